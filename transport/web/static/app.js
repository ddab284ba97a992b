// Entry point of the web client: the login form, the session (token in
// localStorage), the shared error display, and the Chat that runs while
// signed in. Loaded as an ES module from index.html; no build step.

import { createApi } from './api.js';
import { Chat } from './chat.js';

const TOKEN_KEY = 'chat.token';
const USER_KEY = 'chat.username';
const ERROR_SHOW_MS = 10_000;

const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html lacks #${id}`);
  return el;
};

const dom = {
  loginView: $('login-view'),
  loginForm: $('login-form'),
  username: $('username'),
  password: $('password'),
  loginButton: $('login'),
  registerButton: $('register'),
  loginErrorSlot: $('login-error-slot'),
  error: $('error'),
  status: $('status'),

  chatView: $('chat-view'),
  chatErrorSlot: $('chat-error-slot'),
  meName: $('me-name'),
  meAvatar: $('me-avatar'),
  logoutButton: $('logout'),
  menuButton: $('menu'),
  scrim: $('scrim'),
  channelList: $('channel-list'),
  dmList: $('dm-list'),
  dmEmpty: $('dm-empty'),
  newRoomForm: $('new-room-form'),
  newRoomInput: $('new-room'),
  createRoomButton: $('create-room'),
  dmForm: $('dm-form'),
  dmInput: $('dm-user'),
  startDirectButton: $('start-dm'),
  onlineTitle: $('online-title'),
  onlineList: $('online'),
  roomTitle: $('room-title'),
  roomSub: $('room-sub'),
  searchBox: $('search-box'),
  search: $('search'),
  searchCount: $('search-count'),
  messages: $('messages'),
  newMessages: $('new-messages'),
  menuDot: $('menu-dot'),
  notifyButton: $('notify'),
  jumpButton: $('jump'),
  switcher: $('switcher'),
  switcherInput: $('switcher-input'),
  switcherList: $('switcher-list'),
  typing: $('typing'),
  composerForm: $('composer-form'),
  composer: $('composer'),
  privateToggle: $('private-toggle'),
  roomTopic: $('room-topic'),
  topicEdit: $('topic-edit'),
  topicForm: $('topic-form'),
  topicInput: $('topic-input'),
  membersToggle: $('members-toggle'),
  membersCount: $('members-count'),
  kickedNotice: $('kicked-notice'),
  kickedTitle: $('kicked-title'),
  kickedDetail: $('kicked-detail'),
  kickedDismiss: $('kicked-dismiss'),
  panel: $('panel'),
  thread: $('thread'),
  threadClose: $('thread-close'),
  threadRoom: $('thread-room'),
  threadScroll: $('thread-scroll'),
  threadRoot: $('thread-root'),
  threadCount: $('thread-count'),
  threadMessages: $('thread-messages'),
  threadForm: $('thread-form'),
  threadComposer: $('thread-composer'),
  membersPanel: $('members-panel'),
  membersClose: $('members-close'),
  membersTitle: $('members-title'),
  addMemberForm: $('add-member-form'),
  addMember: $('add-member'),
  membersStatus: $('members-status'),
  memberList: $('member-list'),
  membersMore: $('members-more'),
  alsoTitle: $('also-title'),
  alsoList: $('also-list'),
  bansTitle: $('bans-title'),
  banList: $('ban-list'),
  joinRoom: $('join-room'),
  leaveRoom: $('leave-room'),
};

const storage = {
  get(k) {
    try {
      return localStorage.getItem(k);
    } catch {
      return null;
    }
  },
  set(k, v) {
    try {
      localStorage.setItem(k, v);
    } catch {
      // private mode without storage: the session lasts until reload
    }
  },
  remove(k) {
    try {
      localStorage.removeItem(k);
    } catch {
      // nothing stored
    }
  },
};

// The token lives in memory for this page and in localStorage for the next
// load. Each tab keeps using the token it signed in with, so two tabs of one
// browser can be two different people.
let token = storage.get(TOKEN_KEY);

/** Forgets our token, in storage only if it is still ours (not another tab's newer login). */
function dropToken() {
  if (token && storage.get(TOKEN_KEY) === token) storage.remove(TOKEN_KEY);
  token = null;
}
/** @type {Chat|null} */
let chat = null;

const api = createApi({
  getToken: () => token,
  onUnauthorized: (err) => endSession(err.message || 'Please log in again.'),
});

// ---- error display ------------------------------------------------------
//
// One element (data-testid="error") serves both views: it moves into the
// login card or above the composer, wherever the person is looking. An
// error belongs to the action that caused it: the next action clears it,
// so it never outlives a success.

let errorTimer = 0;

function showError(message) {
  dom.error.textContent = message;
  dom.error.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(clearError, ERROR_SHOW_MS);
}

function clearError() {
  clearTimeout(errorTimer);
  dom.error.hidden = true;
  dom.error.textContent = '';
}

dom.error.addEventListener('click', clearError);

// ---- views --------------------------------------------------------------

function showLogin() {
  dom.chatView.hidden = true;
  dom.loginView.hidden = false;
  dom.loginErrorSlot.append(dom.error);
  dom.password.value = '';
  setBusy(false);
  (dom.username.value ? dom.password : dom.username).focus();
}

function enterChat(username, { initialRoom = null } = {}) {
  clearError();
  dom.loginView.hidden = true;
  dom.chatView.hidden = false;
  dom.chatErrorSlot.append(dom.error);
  chat = new Chat({
    api,
    me: username,
    token: () => token,
    dom,
    showError,
    clearError,
    onSessionEnd: endSession,
    storage,
    initialRoom,
  });
  chat.start();
}

/** Leaves the chat for the login form, e.g. after a 401 or a 1008 close. */
function endSession(message) {
  if (chat) {
    chat.stop();
    chat = null;
  }
  dropToken();
  if (dom.loginView.hidden) showLogin();
  if (message) showError(message);
}

// ---- login, register, logout --------------------------------------------

function setBusy(busy) {
  dom.loginButton.disabled = busy;
  dom.registerButton.disabled = busy;
  dom.loginForm.classList.toggle('busy', busy);
}

/**
 * What is wrong with the form before asking the server, or null. The
 * server checks the same rules; this only saves a round trip and says it
 * next to the field.
 */
function formProblem(register, username, password) {
  if (!username) return { field: dom.username, text: 'Enter your username.' };
  if (!password) return { field: dom.password, text: 'Enter your password.' };
  if (!register) return null;
  if (username.length < 3 || username.length > 32) {
    return { field: dom.username, text: 'A username has 3 to 32 characters.' };
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(username)) {
    return { field: dom.username, text: 'Use only letters, digits, “_”, “-” and “.” in a username.' };
  }
  if ([...password].length < 8 || [...password].length > 256) {
    return { field: dom.password, text: 'A password has 8 to 256 characters.' };
  }
  return null;
}

async function signIn(register) {
  const username = dom.username.value.trim();
  const password = dom.password.value;
  clearError();
  const problem = formProblem(register, username, password);
  if (problem) {
    showError(problem.text);
    problem.field.focus();
    return;
  }
  setBusy(true);
  try {
    if (register) await api.register(username, password);
    const res = await api.login(username, password);
    token = res.token;
    storage.set(USER_KEY, res.username);
    storage.set(TOKEN_KEY, res.token);
    dom.password.value = '';
    setBusy(false);
    // A new account starts where the conversation is, ready to type.
    enterChat(res.username, { initialRoom: register ? 'general' : null });
  } catch (e) {
    setBusy(false);
    showError(e.message);
  }
}

dom.loginForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  signIn(false);
});
dom.registerButton.addEventListener('click', () => signIn(true));

dom.logoutButton.addEventListener('click', async () => {
  // Stop the socket first: the server closes it with 1008 on logout, and
  // that must not read as an expired session.
  if (chat) {
    chat.stop();
    chat.forgetDrafts();
    chat = null;
  }
  try {
    await api.logout();
  } catch {
    // the token is dropped either way
  }
  dropToken();
  showLogin();
});

// ---- boot ---------------------------------------------------------------

async function boot() {
  if (!token) {
    showLogin();
    return;
  }
  let username = storage.get(USER_KEY);
  try {
    username = (await api.me()).username;
  } catch (e) {
    if (e.status === 401) return; // endSession has shown the login form
    // Server unreachable: carry on with what we know; the socket retries.
  }
  if (!username || !token) {
    endSession();
    return;
  }
  enterChat(username);
}

boot();
