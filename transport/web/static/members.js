// MembersPanel lists the open room's members (data-testid="members"): each
// one with an online dot and a role badge, owners first. Owners and
// moderators also get a form to add someone, a menu on each member
// (data-testid="member-menu": remove, mute, ban, and for owners the role),
// and the list of bans with a button to lift each. In a public channel the
// people online who are not members show below as "Also here", so a
// moderator can act on them too.
//
// Membership changes are not pushed to other members, so the list is read
// when the panel opens, after each change made here, and on request;
// who is online follows the room's presence frames live.

import { avatar, h } from './view.js';

const PAGE = 1000; // the server's largest page
const MAX_PAGES = 10; // read at once; "Show more" reads the next ones
const ROLE_ORDER = { owner: 0, moderator: 1, member: 2 };
const ROLE_LABEL = { owner: 'Owner', moderator: 'Moderator', member: 'Member' };

/** The durations offered for a mute or a ban, in seconds (0: until lifted). */
export const RESTRICT_FOR = [
  [0, 'until lifted'], [600, 'for 10 minutes'], [3600, 'for 1 hour'], [86400, 'for 1 day'], [604800, 'for 1 week'],
];

export class MembersPanel {
  /**
   * @param {object} o
   * @param {ReturnType<import('./api.js').createApi>} o.api
   * @param {string} o.me
   * @param {Record<string, HTMLElement>} o.dom
   * @param {(msg: string) => void} o.showError
   * @param {() => void} o.clearError
   * @param {(open: boolean) => void} o.onToggle  the panel opened or closed
   * @param {(room) => void} o.onRoleKnown        our role in room, or its member list, may have changed
   * @param {AbortSignal} o.signal
   */
  constructor(o) {
    this.o = o;
    this.room = null;
    this.gen = 0;
    this.loading = false;
    this.bans = [];
    this.menuFor = null; // the user the member menu is open for
    this.menu = h('div', { class: 'popover member-menu', 'data-testid': 'member-menu', role: 'menu', hidden: true });
    document.body.append(this.menu);

    const d = o.dom;
    const on = (el, type, fn) => el.addEventListener(type, fn, { signal: o.signal });
    on(d.membersClose, 'click', () => this.close());
    on(d.addMemberForm, 'submit', (ev) => {
      ev.preventDefault();
      this.add(d.addMember.value);
    });
    on(d.memberList, 'click', (ev) => this.listClick(ev));
    on(d.alsoList, 'click', (ev) => this.listClick(ev));
    on(d.banList, 'click', (ev) => {
      const b = ev.target.closest('[data-lift]');
      if (b) this.run(() => this.o.api.liftBan(this.room.name, b.getAttribute('data-lift')), `The ban on ${b.getAttribute('data-lift')} was lifted.`);
    });
    on(d.membersMore, 'click', () => this.loadMore());
    on(d.joinRoom, 'click', () => this.run(() => this.o.api.addMember(this.room.name, this.o.me), 'You joined the channel.'));
    on(d.leaveRoom, 'click', () => this.leave());
    on(this.menu, 'click', (ev) => this.menuClick(ev));
    on(document, 'pointerdown', (ev) => {
      if (!this.menu.hidden && !this.menu.contains(ev.target) && !ev.target.closest('[data-testid="member-actions"]')) this.closeMenu();
    });
    on(document, 'keydown', (ev) => {
      if (ev.key === 'Escape' && !this.menu.hidden) {
        ev.preventDefault();
        ev.stopPropagation();
        this.closeMenu();
      }
    });
  }

  isOpen(room) {
    return this.room !== null && (!room || this.room === room);
  }

  open(room) {
    this.room = room;
    this.o.dom.membersPanel.hidden = false;
    this.o.onToggle(true);
    this.setStatus('');
    this.render();
    this.load();
  }

  close() {
    if (!this.room) return;
    this.gen++;
    this.room = null;
    this.closeMenu();
    this.o.dom.membersPanel.hidden = true;
    this.o.onToggle(false);
  }

  /** The open room changed while the panel is open: show the new one's members. */
  switchTo(room) {
    if (!this.room || this.room === room) return;
    if (!room || room.kind === 'direct') {
      this.close();
      return;
    }
    this.closeMenu();
    this.open(room);
  }

  setStatus(text) {
    this.o.dom.membersStatus.textContent = text;
  }

  /** Reads the member list (and, for its managers, the bans) of the room afresh. */
  async load() {
    const room = this.room;
    if (!room) return;
    const gen = ++this.gen;
    this.loading = true;
    this.render();
    try {
      const members = new Map();
      let after = null;
      let more = false;
      for (let page = 0; page < MAX_PAGES; page++) {
        const res = await this.o.api.members(room.name, { after, limit: PAGE });
        if (gen !== this.gen) return;
        const list = res.members || [];
        for (const m of list) members.set(m.user, { role: m.role, online: m.online });
        more = Boolean(res.has_more) && list.length > 0;
        if (!more) break;
        after = list[list.length - 1].user;
      }
      room.memberList = { members, more, after, at: Date.now() };
      this.learnRole(room);
      this.bans = [];
      if (room.moderates()) {
        try {
          const res = await this.o.api.bans(room.name);
          if (gen !== this.gen) return;
          this.bans = res.bans || [];
        } catch {
          this.bans = []; // not a manager after all (our role changed meanwhile)
        }
      }
    } catch (e) {
      if (gen !== this.gen || e.status === 401) return;
      this.setStatus(e.message);
    } finally {
      if (gen === this.gen) this.loading = false;
    }
    if (gen === this.gen) this.render();
  }

  /** Reads the next pages after "Show more". */
  async loadMore() {
    const room = this.room;
    const ml = room && room.memberList;
    if (!ml || !ml.more) return;
    const gen = this.gen;
    try {
      let after = ml.after;
      for (let page = 0; page < MAX_PAGES && ml.more; page++) {
        const res = await this.o.api.members(room.name, { after, limit: PAGE });
        if (gen !== this.gen) return;
        const list = res.members || [];
        for (const m of list) ml.members.set(m.user, { role: m.role, online: m.online });
        ml.more = Boolean(res.has_more) && list.length > 0;
        if (list.length) after = list[list.length - 1].user;
      }
      ml.after = after;
    } catch (e) {
      if (e.status !== 401) this.setStatus(e.message);
    }
    if (gen === this.gen) this.render();
  }

  /** Our own entry in a complete list says our role; none means we are not a member. */
  learnRole(room) {
    const ml = room.memberList;
    const mine = ml.members.get(this.o.me);
    const role = mine ? mine.role : ml.more ? room.role : '';
    room.role = role;
    this.o.onRoleKnown(room);
  }

  /** Whether we may act on target (remove, mute, ban; roles for owners) in the open room. */
  canManage(user, role) {
    const room = this.room;
    if (!room || !room.moderates() || user === this.o.me) return false;
    return role !== 'owner' || room.role === 'owner';
  }

  render() {
    const d = this.o.dom;
    const room = this.room;
    if (!room) return;
    const ml = room.memberList;
    const members = ml ? [...ml.members].map(([user, m]) => ({ user, ...m })) : [];
    members.sort((a, b) => (ROLE_ORDER[a.role] ?? 3) - (ROLE_ORDER[b.role] ?? 3) || a.user.localeCompare(b.user));
    d.membersTitle.textContent = ml ? `Members · ${members.length}${ml.more ? '+' : ''}` : 'Members';
    d.addMemberForm.hidden = !room.moderates();
    d.memberList.replaceChildren(...members.map((m) => this.item(m.user, m.role)));
    if (ml && members.length === 0) {
      d.memberList.append(h('li', { class: 'muted empty' },
        room.kind === 'channel' ? 'Nobody has joined this channel as a member yet.' : 'No members.'));
    } else if (!ml && this.loading) {
      d.memberList.append(h('li', { class: 'muted empty' }, 'Loading members…'));
    }
    d.membersMore.hidden = !(ml && ml.more);

    // People reading a public channel without being members of it.
    const also = room.kind === 'channel' && ml && !ml.more
      ? [...room.online].filter((u) => !ml.members.has(u)).sort((a, b) => a.localeCompare(b))
      : [];
    d.alsoTitle.hidden = also.length === 0;
    d.alsoList.replaceChildren(...also.map((u) => this.item(u, '')));

    const bans = room.moderates() ? this.bans : [];
    d.bansTitle.hidden = bans.length === 0;
    d.banList.replaceChildren(...bans.map((b) => h('li', { class: 'ban', 'data-testid': 'ban', 'data-user': b.user },
      avatar(b.user),
      h('span', { class: 'member-name' }, b.user),
      h('span', { class: 'muted ban-until' }, b.until ? `until ${new Date(b.until).toLocaleString()}` : 'until lifted'),
      h('button', { type: 'button', class: 'btn ghost small', 'data-lift': b.user, 'data-testid': 'lift-ban' }, 'Lift'))));

    const member = room.role !== '';
    d.joinRoom.hidden = !(ml && !ml.more && room.kind === 'channel' && !member);
    d.leaveRoom.hidden = !member;
    d.leaveRoom.textContent = room.kind === 'private' ? 'Leave this private channel' : 'Leave the member list';
  }

  /** One person of the list: avatar with an online dot, name, role badge, and the menu button. */
  item(user, role) {
    const online = this.room.online.has(user);
    const badge = role === 'owner' || role === 'moderator'
      ? h('span', { class: `role-badge ${role}`, title: ROLE_LABEL[role] }, role === 'owner' ? 'owner' : 'mod')
      : null;
    const menu = this.canManage(user, role)
      ? h('button', {
        type: 'button', class: 'icon-btn member-actions', 'data-testid': 'member-actions', 'data-user': user,
        'aria-label': `Actions for ${user}`, 'aria-haspopup': 'menu', title: `Actions for ${user}`,
      }, '⋯')
      : null;
    return h('li', {
      class: `member${online ? ' online' : ''}${user === this.o.me ? ' me' : ''}`,
      'data-testid': 'member', 'data-user': user, 'data-role': role || 'none', 'data-online': String(online),
    },
    h('span', { class: 'member-avatar' }, avatar(user),
      h('span', { class: `dot${online ? ' on' : ''}`, 'data-testid': 'online-dot', title: online ? 'Online here' : 'Away' })),
    h('span', { class: 'member-name' }, user),
    badge, menu);
  }

  listClick(ev) {
    const b = ev.target.closest('[data-testid="member-actions"]');
    if (!b) return;
    const user = b.getAttribute('data-user');
    if (!this.menu.hidden && this.menuFor === user) {
      this.closeMenu();
      return;
    }
    this.openMenu(user, b);
  }

  roleOf(user) {
    const ml = this.room && this.room.memberList;
    const m = ml && ml.members.get(user);
    return m ? m.role : '';
  }

  openMenu(user, anchor) {
    const room = this.room;
    const role = this.roleOf(user);
    this.menuFor = user;
    const items = [h('p', { class: 'menu-title' }, user, role ? h('span', { class: 'muted' }, ` · ${ROLE_LABEL[role]}`) : null)];
    if (role !== 'owner') {
      const select = h('select', { class: 'restrict-for', 'data-testid': 'restrict-for', 'aria-label': 'How long a mute or ban lasts' },
        ...RESTRICT_FOR.map(([s, label]) => h('option', { value: String(s) }, label)));
      items.push(h('label', { class: 'menu-field' }, h('span', {}, 'Mute or ban'), select));
      if (role) items.push(this.menuButton('remove', `Remove ${user} from #${room.name}`));
      items.push(this.menuButton('mute', `Mute ${user}`));
      items.push(this.menuButton('ban', `Ban ${user}`, 'danger'));
    }
    if (room.role === 'owner' && role) {
      for (const r of ['owner', 'moderator', 'member']) {
        if (r !== role) items.push(this.menuButton(`role-${r}`, `Make ${r}`));
      }
    }
    this.menu.replaceChildren(...items);
    this.menu.hidden = false;
    const a = anchor.getBoundingClientRect();
    const w = this.menu.offsetWidth;
    const ht = this.menu.offsetHeight;
    let top = a.bottom + 4;
    if (top + ht > window.innerHeight - 8) top = Math.max(8, a.top - ht - 4);
    this.menu.style.top = `${top}px`;
    this.menu.style.left = `${Math.min(Math.max(8, a.right - w), window.innerWidth - w - 8)}px`;
    this.menu.querySelector('button, select').focus();
  }

  menuButton(action, label, extra = '') {
    return h('button', { type: 'button', class: `menu-item ${extra}`.trim(), 'data-testid': action, 'data-action': action, role: 'menuitem' }, label);
  }

  closeMenu() {
    this.menu.hidden = true;
    this.menuFor = null;
  }

  menuClick(ev) {
    const b = ev.target.closest('[data-action]');
    if (!b || !this.menuFor || !this.room) return;
    const user = this.menuFor;
    const room = this.room.name;
    const action = b.getAttribute('data-action');
    const select = this.menu.querySelector('select');
    const seconds = select ? Number(select.value) : 0;
    const span = (RESTRICT_FOR.find(([s]) => s === seconds) || RESTRICT_FOR[0])[1];
    if (action === 'ban' && !b.classList.contains('armed')) {
      // Banning removes someone at once: the first click asks, the second does it.
      b.classList.add('armed');
      b.textContent = `Ban ${user} ${span}? Click again`;
      return;
    }
    this.closeMenu();
    const api = this.o.api;
    switch (action) {
      case 'remove': return this.run(() => api.removeMember(room, user), `${user} was removed.`);
      case 'mute': return this.run(() => api.restrict(room, user, { mute: true, seconds }), `${user} is muted ${span}.`);
      case 'ban': return this.run(() => api.restrict(room, user, { seconds }), `${user} is banned ${span}.`);
      default:
        if (action.startsWith('role-')) {
          const role = action.slice(5);
          return this.run(() => api.setRole(room, user, role), `${user} is now ${role === 'owner' ? 'an owner' : `a ${role}`}.`);
        }
    }
    return undefined;
  }

  /** Runs one change, says how it went, and reads the list again. */
  async run(fn, done) {
    const room = this.room;
    this.o.clearError();
    this.setStatus('');
    try {
      await fn();
      if (this.room !== room) return;
      this.setStatus(done);
      this.o.dom.addMember.value = '';
    } catch (e) {
      if (e.status === 401 || this.room !== room) return;
      this.setStatus(this.explain(e));
    }
    await this.load();
  }

  explain(e) {
    return e.code === 'banned' ? 'That user is banned here: lift the ban first.' : e.message;
  }

  add(input) {
    const user = String(input).trim().replace(/^@/, '').toLowerCase();
    if (!user) {
      this.setStatus('Type the username of the person to add.');
      this.o.dom.addMember.focus();
      return;
    }
    this.run(() => this.o.api.addMember(this.room.name, user), `${user} was added.`);
  }

  async leave() {
    const room = this.room;
    if (!room) return;
    room.leaving = true;
    try {
      await this.o.api.removeMember(room.name, this.o.me);
      // The kicked frame and room_removed event of our own leaving are no news.
      setTimeout(() => { room.leaving = false; }, 10_000);
      room.role = '';
      this.o.onRoleKnown(room);
      if (this.room === room) {
        this.setStatus('You left the members.');
        await this.load();
      }
    } catch (e) {
      room.leaving = false;
      if (e.status !== 401 && this.room === room) this.setStatus(e.message);
    }
  }
}
