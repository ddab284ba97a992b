// MentionComplete offers usernames while someone types "@na" in a text
// box: a list above the box (data-testid="mention-list", one
// "mention-option" per name), ↑/↓ to choose, Enter or Tab to put "@name "
// in place, Escape to close. The names come from the owner (the room's
// members, who is online, who wrote lately), so it knows nothing of rooms.

import { h } from './view.js';

const MAX_OPTIONS = 8;
// "@" at the start or after a character that cannot be part of a
// username (PROTOCOL.md's mention rule), then what is typed of the name.
const TOKEN_RE = /(^|[^A-Za-z0-9_.-])@([A-Za-z0-9_.-]{0,32})$/;

export class MentionComplete {
  /**
   * @param {object} o
   * @param {HTMLTextAreaElement} o.input
   * @param {HTMLElement} o.anchor             the positioned element the list sits above
   * @param {() => string[]} o.names           candidate usernames
   * @param {() => void} [o.onNeedNames]       called when a completion starts (fetch members lazily)
   * @param {() => void} [o.onPick]            after a name was put in
   * @param {AbortSignal} o.signal
   */
  constructor(o) {
    this.o = o;
    this.options = [];
    this.index = 0;
    this.token = null; // {start, end, prefix}
    this.list = h('ul', { class: 'mention-list', 'data-testid': 'mention-list', role: 'listbox', 'aria-label': 'People', hidden: true });
    o.anchor.append(this.list);
    const on = (el, type, fn) => el.addEventListener(type, fn, { signal: o.signal });
    on(o.input, 'input', () => this.update());
    on(o.input, 'click', () => this.update());
    on(o.input, 'blur', () => setTimeout(() => this.close(), 150));
    on(this.list, 'pointerdown', (ev) => ev.preventDefault()); // keep the focus in the box
    on(this.list, 'click', (ev) => {
      const li = ev.target.closest('[data-user]');
      if (li) this.pick(li.getAttribute('data-user'));
    });
  }

  get isOpen() {
    return !this.list.hidden;
  }

  /** Looks at the text before the caret and shows, narrows or closes the list. */
  update() {
    const input = this.o.input;
    const caret = input.selectionStart;
    if (caret !== input.selectionEnd) {
      this.close();
      return;
    }
    const m = TOKEN_RE.exec(input.value.slice(0, caret));
    if (!m) {
      this.close();
      return;
    }
    const prefix = m[2].toLowerCase();
    const starting = this.token === null;
    this.token = { start: caret - m[2].length - 1, end: caret, prefix };
    if (starting && this.o.onNeedNames) this.o.onNeedNames();
    this.render();
  }

  /** Shows the names that start with what is typed, or closes the list when none does. */
  render() {
    if (!this.token) return;
    const { prefix } = this.token;
    const seen = new Set();
    const options = [];
    for (const n of this.o.names()) {
      const name = String(n).toLowerCase();
      if (seen.has(name) || !name.startsWith(prefix)) continue;
      seen.add(name);
      options.push(name);
    }
    options.sort((a, b) => a.localeCompare(b));
    this.options = options.slice(0, MAX_OPTIONS);
    // Typed in full already: nothing left to offer.
    if (this.options.length === 0 || (this.options.length === 1 && this.options[0] === prefix)) {
      this.list.hidden = true;
      return;
    }
    this.index = Math.min(this.index, this.options.length - 1);
    this.list.replaceChildren(...this.options.map((name, i) => h('li', {
      class: i === this.index ? 'mention-option selected' : 'mention-option',
      'data-testid': 'mention-option', 'data-user': name, role: 'option', 'aria-selected': String(i === this.index),
    }, h('span', { class: 'at' }, '@'), name)));
    this.list.hidden = false;
  }

  /** Handles a key in the text box; returns true when it was the list's. */
  key(ev) {
    if (!this.isOpen) return false;
    switch (ev.key) {
      case 'ArrowDown':
      case 'ArrowUp':
        this.index = (this.index + (ev.key === 'ArrowDown' ? 1 : this.options.length - 1)) % this.options.length;
        this.render();
        break;
      case 'Enter':
      case 'Tab':
        if (ev.shiftKey || ev.isComposing) return false;
        this.pick(this.options[this.index]);
        break;
      case 'Escape':
        this.close();
        break;
      default:
        return false;
    }
    ev.preventDefault();
    ev.stopPropagation();
    return true;
  }

  /** Replaces the typed "@pre" with "@name ". */
  pick(name) {
    const t = this.token;
    if (!t || !name) return;
    const input = this.o.input;
    const before = input.value.slice(0, t.start);
    const after = input.value.slice(t.end).replace(/^[A-Za-z0-9_.-]*/, '');
    const insert = `@${name} `;
    input.value = before + insert + after.replace(/^ /, '');
    const caret = before.length + insert.length;
    input.setSelectionRange(caret, caret);
    this.close();
    input.dispatchEvent(new Event('input', { bubbles: true }));
    this.close(); // the input event must not reopen it on "@name "
    if (this.o.onPick) this.o.onPick();
  }

  close() {
    this.token = null;
    this.index = 0;
    this.list.hidden = true;
  }
}
