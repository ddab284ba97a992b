// The actions on one message: a small toolbar (data-testid="message-menu")
// that appears on the message under the pointer, on the one that has the
// keyboard focus, or after a long press on a touch screen; the emoji
// picker it opens; and the in-place editor of a message's text.
//
// One toolbar and one picker exist for the whole page; they move to the
// message they act on. What a person may do (edit only their own message,
// delete as its author or a moderator, …) comes from the owner's permit
// callback, so the toolbar never offers what the server would refuse.

import { h, isSendKey, msgOf } from './view.js';

/** The emoji the picker offers: the common reactions of chat products. */
export const PICKER_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀', '✅', '🔥', '👎', '🚀'];

const LONG_PRESS_MS = 450;
const LONG_PRESS_SLOP_PX = 10;
const ARM_MS = 4000; // how long "Delete?" waits for its confirming click

const icon = (d) => {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', '1.8');
  path.setAttribute('stroke-linecap', 'round');
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
};

const ICONS = {
  react: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM8.5 14.5s1.3 2 3.5 2 3.5-2 3.5-2M9 9.5h.01M15 9.5h.01',
  reply: 'M4 5h16v11H9l-5 4z',
  edit: 'M4 20h4L19 9l-4-4L4 16zM13.5 6.5l4 4',
  delete: 'M5 7h14M10 7V4h4v3M7 7l1 13h8l1-13',
};

export class MessageMenu {
  /**
   * @param {object} o
   * @param {string} o.me
   * @param {(msg, action: string, where: string) => boolean} o.permit  may I do action on msg here?
   * @param {(msg, action: string, where: string) => void} o.onAction  reply, edit, delete
   * @param {(msg, emoji: string) => void} o.onReact                   toggle my reaction
   * @param {(msg, text: string) => void} o.onEditSave
   * @param {AbortSignal} o.signal
   */
  constructor(o) {
    this.o = o;
    this.msg = null; // the message the toolbar is on
    this.where = 'room';
    this.pinned = false; // opened by touch or keyboard: stays until dismissed
    this.pickerFor = null; // the message the picker reacts to
    this.editing = null; // {msg, form, textarea}
    this.armTimer = 0;
    this.pressTimer = 0;
    this.pressAt = null;
    this.pressed = false;

    const button = (action, label) => h('button', {
      type: 'button', class: `tool ${action}`, 'data-testid': action, 'data-action': action, 'aria-label': label, title: label,
    }, icon(ICONS[action]));
    this.buttons = {
      react: button('react', 'Add a reaction'),
      reply: button('reply', 'Reply in thread'),
      edit: button('edit', 'Edit'),
      delete: button('delete', 'Delete'),
    };
    this.tools = h('div', { class: 'msg-tools', 'data-testid': 'message-menu', role: 'toolbar', 'aria-label': 'Message actions' },
      ...Object.values(this.buttons));
    this.picker = h('div', { class: 'emoji-picker', 'data-testid': 'emoji-picker', role: 'dialog', 'aria-label': 'Pick a reaction', hidden: true },
      ...PICKER_EMOJI.map((e) => h('button', { type: 'button', class: 'emoji', 'data-testid': 'emoji', 'data-emoji': e, 'aria-label': `React with ${e}` }, e)));
    document.body.append(this.picker);

    const on = (el, type, fn, extra = {}) => el.addEventListener(type, fn, { signal: o.signal, ...extra });
    on(this.tools, 'click', (ev) => {
      const b = ev.target.closest('[data-action]');
      if (b && this.msg) this.act(b.getAttribute('data-action'), b);
    });
    // A press on the toolbar must not reach the message below it (a
    // failed send's click-to-retry, a long press).
    on(this.tools, 'pointerdown', (ev) => ev.stopPropagation());
    on(this.picker, 'click', (ev) => {
      const b = ev.target.closest('[data-emoji]');
      if (!b || !this.pickerFor) return;
      const msg = this.pickerFor;
      this.closePicker();
      this.o.onReact(msg, b.getAttribute('data-emoji'));
    });
    on(document, 'pointerdown', (ev) => {
      if (!this.picker.hidden && !this.picker.contains(ev.target) && !ev.target.closest('[data-action="react"], [data-testid="add-reaction"]')) {
        this.closePicker();
      }
      if (this.pinned && !this.tools.contains(ev.target) && !this.picker.contains(ev.target) && msgOf(ev.target) !== this.msg) {
        this.hide(true);
      }
    });
    on(document, 'keydown', (ev) => {
      if (ev.key !== 'Escape') return;
      if (!this.picker.hidden) {
        ev.preventDefault();
        ev.stopPropagation();
        this.closePicker();
        if (this.msg && this.msg.el) this.buttons.react.focus();
      }
    }, { capture: true });
    on(window, 'resize', () => this.closePicker());
  }

  /** Makes a message list show the toolbar on its messages (hover, focus, long press). */
  attach(list, where) {
    const on = (type, fn, extra = {}) => list.addEventListener(type, fn, { signal: this.o.signal, ...extra });
    on('pointerover', (ev) => {
      // A finger does not hover: on a touch screen a long press opens the toolbar.
      if (ev.pointerType === 'touch' || this.pinned) return;
      const msg = msgOf(ev.target);
      if (msg) this.show(msg, where, false);
    });
    on('pointerleave', () => {
      if (!this.pinned) this.hide();
    });
    on('focusin', (ev) => {
      const msg = msgOf(ev.target);
      if (msg && ev.target.closest('.msg') === ev.target) this.show(msg, where, true);
    });
    on('focusout', (ev) => {
      // The focus left the message and its toolbar: a pinned toolbar goes too.
      if (this.pinned && this.msg && !(ev.relatedTarget && (ev.relatedTarget.closest?.('.msg') === ev.target.closest('.msg')))
        && !this.pickerOpen && !this.buttons.delete.classList.contains('armed')) {
        const el = ev.target.closest('.msg');
        if (el && msgOf(el) === this.msg) this.hide(true);
      }
    });
    on('pointerdown', (ev) => {
      this.pressed = false;
      if (ev.pointerType !== 'touch') return;
      const msg = msgOf(ev.target);
      if (!msg || ev.target.closest('button, a, textarea')) return;
      clearTimeout(this.pressTimer);
      this.pressAt = { x: ev.clientX, y: ev.clientY };
      this.pressed = false;
      this.pressTimer = setTimeout(() => {
        this.pressed = true;
        this.show(msg, where, true);
        if (navigator.vibrate) navigator.vibrate(10);
      }, LONG_PRESS_MS);
    });
    on('pointermove', (ev) => {
      if (!this.pressAt) return;
      if (Math.hypot(ev.clientX - this.pressAt.x, ev.clientY - this.pressAt.y) > LONG_PRESS_SLOP_PX) this.cancelPress();
    }, { passive: true });
    on('pointerup', () => this.cancelPress());
    on('pointercancel', () => this.cancelPress());
    on('contextmenu', (ev) => {
      // A long press opens our menu, not the browser's.
      if (this.pressed || (this.pressAt && msgOf(ev.target))) ev.preventDefault();
    });
    on('click', (ev) => {
      // The click that ends a long press is not a click on the message.
      if (this.pressed) {
        ev.stopPropagation();
        ev.preventDefault();
        this.pressed = false;
      }
    }, { capture: true });
    on('keydown', (ev) => {
      if (ev.target.closest('textarea, input') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      // ↑ and ↓ move the focus from message to message (the list itself
      // takes the focus with Tab); the focused one shows its toolbar.
      if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') {
        const shown = [...list.querySelectorAll('.msg[data-id]')].filter((m) => m.getClientRects().length > 0);
        if (shown.length === 0) return;
        const at = shown.indexOf(ev.target.closest('.msg'));
        let next;
        if (at < 0) next = ev.key === 'ArrowUp' ? shown[shown.length - 1] : shown[0];
        else next = shown[Math.min(shown.length - 1, Math.max(0, at + (ev.key === 'ArrowUp' ? -1 : 1)))];
        ev.preventDefault();
        next.tabIndex = -1;
        next.focus();
        next.scrollIntoView({ block: 'nearest' });
        return;
      }
      // On a focused message: E edits, Delete deletes, R replies.
      const msg = msgOf(ev.target);
      if (!msg || ev.target.closest('.msg') !== ev.target) return;
      const action = { e: 'edit', Delete: 'delete', r: 'reply' }[ev.key];
      if (action && this.o.permit(msg, action, where)) {
        ev.preventDefault();
        this.o.onAction(msg, action, where);
      }
    });
  }

  cancelPress() {
    clearTimeout(this.pressTimer);
    this.pressAt = null;
  }

  /** Puts the toolbar on msg, with the actions allowed there. */
  show(msg, where, pinned) {
    const el = where === 'room' ? msg.el : msg.tel;
    if (!el || !msg.id || msg.pending || msg.deleted || this.editing) {
      if (!pinned) this.hide();
      return;
    }
    if (this.msg !== msg || this.where !== where) this.disarm();
    this.msg = msg;
    this.where = where;
    this.pinned = pinned;
    let any = false;
    for (const [action, b] of Object.entries(this.buttons)) {
      b.hidden = !this.o.permit(msg, action, where);
      any = any || !b.hidden;
    }
    if (!any) {
      this.hide(true);
      return;
    }
    const body = el.querySelector('.msg-body');
    if (this.tools.parentNode !== body) body.append(this.tools);
  }

  /** Takes the toolbar off its message (unless the picker for it is open, or force). */
  hide(force = false) {
    if (!force && (!this.picker.hidden || this.buttons.delete.classList.contains('armed'))) return;
    this.disarm();
    this.tools.remove();
    this.msg = null;
    this.pinned = false;
  }

  /** A message is gone from view (its room closed, it was deleted): take everything off it. */
  forget(msg) {
    if (this.msg === msg) this.hide(true);
    if (this.pickerFor === msg) this.closePicker();
    if (this.editing && this.editing.msg === msg) this.cancelEdit();
  }

  act(action, button) {
    const msg = this.msg;
    if (action === 'react') {
      this.openPicker(msg, button);
      return;
    }
    if (action === 'delete' && !button.classList.contains('armed')) {
      // A deletion cannot be undone: the first click asks, the second does it.
      button.classList.add('armed');
      button.setAttribute('aria-label', 'Click again to delete');
      button.setAttribute('title', 'Click again to delete');
      button.replaceChildren(icon(ICONS.delete), h('span', {}, 'Delete?'));
      clearTimeout(this.armTimer);
      this.armTimer = setTimeout(() => this.disarm(), ARM_MS);
      return;
    }
    const where = this.where;
    this.hide(true);
    this.o.onAction(msg, action, where);
  }

  disarm() {
    clearTimeout(this.armTimer);
    const b = this.buttons.delete;
    if (!b.classList.contains('armed')) return;
    b.classList.remove('armed');
    b.setAttribute('aria-label', 'Delete');
    b.setAttribute('title', 'Delete');
    b.replaceChildren(icon(ICONS.delete));
  }

  /** Opens the picker next to anchor, to react to msg. */
  openPicker(msg, anchor) {
    this.pickerFor = msg;
    const p = this.picker;
    p.hidden = false;
    const a = anchor.getBoundingClientRect();
    const w = p.offsetWidth;
    const ht = p.offsetHeight;
    // Below the anchor if it fits, else above; always inside the window.
    let top = a.bottom + 6;
    if (top + ht > window.innerHeight - 8) top = Math.max(8, a.top - ht - 6);
    const left = Math.min(Math.max(8, a.right - w), window.innerWidth - w - 8);
    // CSSOM, not a style attribute: the CSP allows it.
    p.style.top = `${top}px`;
    p.style.left = `${left}px`;
    p.querySelector('button').focus();
  }

  closePicker() {
    this.picker.hidden = true;
    this.pickerFor = null;
  }

  get pickerOpen() {
    return !this.picker.hidden;
  }

  // ---- the editor -------------------------------------------------------

  /** Replaces the text of msg's element with a text box holding it; Enter saves, Escape cancels. */
  startEdit(msg, where) {
    if (this.editing) this.cancelEdit();
    const el = where === 'room' ? msg.el : msg.tel;
    if (!el) return;
    this.hide(true);
    const textarea = h('textarea', { class: 'edit-box', 'data-testid': 'edit-input', rows: '1', 'aria-label': 'Edit your message' });
    textarea.value = msg.text;
    const save = h('button', { type: 'submit', class: 'btn primary small', 'data-testid': 'edit-save' }, 'Save');
    const cancel = h('button', { type: 'button', class: 'btn ghost small', 'data-testid': 'edit-cancel' }, 'Cancel');
    const form = h('form', { class: 'msg-edit', novalidate: true }, textarea,
      h('div', { class: 'edit-actions' }, h('span', { class: 'edit-hint muted' }, 'Enter to save · Esc to cancel'), cancel, save));
    const body = el.querySelector('.msg-text');
    body.after(form);
    el.classList.add('editing');
    this.editing = { msg, form, textarea, el };

    const size = () => {
      textarea.style.height = 'auto';
      if (textarea.scrollHeight > 0) textarea.style.height = `${Math.min(textarea.scrollHeight + 2, 240)}px`;
    };
    textarea.addEventListener('input', size);
    textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.preventDefault();
        ev.stopPropagation();
        this.cancelEdit(true);
      } else if (isSendKey(ev)) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    textarea.addEventListener('keypress', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey) ev.preventDefault(); // see the composer's keypress
    });
    cancel.addEventListener('click', () => this.cancelEdit(true));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = textarea.value;
      this.cancelEdit(true);
      if (text !== msg.text) this.o.onEditSave(msg, text);
    });
    size();
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
    el.scrollIntoView({ block: 'nearest' });
  }

  /** Closes the editor; refocus puts the focus back on the message. */
  cancelEdit(refocus = false) {
    const e = this.editing;
    if (!e) return;
    this.editing = null;
    e.form.remove();
    e.el.classList.remove('editing');
    if (refocus) this.o.onEditClosed?.(e.msg);
  }

  get isEditing() {
    return this.editing !== null;
  }
}
