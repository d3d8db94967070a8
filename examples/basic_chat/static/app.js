// roomcast basic chat: the page. Plain browser APIs, no framework.
// Everything that came from the network is put on the page with textContent, never innerHTML.

const $ = (id) => document.getElementById(id);

const ROOM = new URLSearchParams(location.search).get("room") || "chat";
const SIGNAL_ROOM = `${ROOM}:signal`;
const FILES_ROOM = `${ROOM}:files`;
// Tells this page's signalling messages from the others' in the same signal room.
const ME = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");

const chat = $("chat");
const localVideo = $("local-video");
const remoteVideo = $("remote-video");
const cameraSelect = $("camera");
const callButton = $("call");
const callState = $("call-state");

$("room-name").textContent = ROOM;

// ---------------------------------------------------------------- chat

const socket = io(); // the page's own origin, path /socket.io/

socket.on("connect", () => {
  $("status").textContent = "connected";
  forgetPresences(); // its own presence_state will come, once it is tracked
  shownName = myName();
  if (socket.recovered) {
    // The connection dropped and came back in time (the server's connection-state recovery):
    // same id, same rooms, and what the room said meanwhile arrives now, in order. `ready`
    // would announce a "New client"; only the presence is gone, so track the name again.
    addLine("status", "Reconnected: nothing was missed.");
    socket.emit("name", { name: shownName });
  } else {
    socket.emit("ready", { chat_room: ROOM, signal_room: SIGNAL_ROOM, files_room: FILES_ROOM, name: shownName });
  }
});
socket.on("disconnect", () => {
  // socket.active: the client reconnects by itself (not after the server closed it on purpose).
  $("status").textContent = socket.active ? "disconnected, reconnecting…" : "disconnected";
  addLine("status", socket.active ? "Connection lost, reconnecting…" : "Disconnected.");
  forgetPresences();
});
socket.on("announce", (data) => addLine("announce", data.message));
socket.on("message", addMessage);
socket.on("error", (error) => addLine("error", `The server refused ${error.event}: ${error.message}`));

function addLine(kind, text) {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = text;
  appendToChat(li);
}

function addMessage({ author, message, picture }) {
  const li = document.createElement("li");
  li.className = "message";
  if (typeof picture === "string" && picture.startsWith("data:image/")) {
    const img = document.createElement("img");
    img.className = "avatar";
    img.src = picture;
    img.alt = `${author}'s profile picture`;
    li.append(img);
  }
  const who = document.createElement("strong");
  who.className = "author";
  who.textContent = author;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message;
  li.append(who, text);
  appendToChat(li);
}

function appendToChat(li) {
  const atBottom = chat.scrollTop + chat.clientHeight >= chat.scrollHeight - 4;
  chat.append(li);
  if (atBottom) chat.scrollTop = chat.scrollHeight;
}

let profilePicture = null; // a small JPEG data: URL, sent along with each message

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const message = $("message").value;
  if (!message.trim()) return;
  const data = { room: ROOM, author: $("name").value.trim(), message };
  if (profilePicture) data.picture = profilePicture;
  socket.emit("send", data);
  $("message").value = "";
  $("message").focus();
});

// ---------------------------------------------------------------- who is here
// Presence of this page's room, {key: [meta, ...]} with one key per connection: the server's
// `presence_state`, then every `presence_diff` applied to it. A diff can come before the
// state; those wait in `heldDiffs` until the state has come.

let presences = null; // a Map of key -> metas, once the state has come
let heldDiffs = [];
let shownName = null; // the name the room has for this page
let nameTimer = null;

function myName() {
  return $("name").value.trim() || "Anonymous";
}

function sendName() {
  clearTimeout(nameTimer);
  if (!socket.connected || myName() === shownName) return; // `ready` sends it on connecting
  shownName = myName();
  socket.emit("name", { name: shownName });
}

$("name").addEventListener("input", () => {
  clearTimeout(nameTimer);
  nameTimer = setTimeout(sendName, 500);
});
$("name").addEventListener("change", sendName);

socket.on("presence_state", ({ room, presences: state }) => {
  if (room !== ROOM) return; // the signal and files rooms have presences too
  presences = new Map(Object.entries(state));
  for (const diff of heldDiffs) applyDiff(diff);
  heldDiffs = [];
  showPresences();
});

socket.on("presence_diff", (diff) => {
  if (diff.room !== ROOM) return;
  if (presences === null) {
    heldDiffs.push(diff);
    return;
  }
  applyDiff(diff);
  showPresences();
});

function applyDiff({ joins, leaves }) {
  for (const [key, metas] of Object.entries(joins)) {
    const have = presences.get(key) ?? [];
    const refs = new Set(have.map((meta) => meta.ref));
    const now = [...have, ...metas.filter((meta) => !refs.has(meta.ref))];
    if (now.length) presences.set(key, now);
  }
  for (const [key, metas] of Object.entries(leaves)) {
    const refs = new Set(metas.map((meta) => meta.ref));
    const left = (presences.get(key) ?? []).filter((meta) => !refs.has(meta.ref));
    if (left.length) presences.set(key, left);
    else presences.delete(key);
  }
}

function forgetPresences() {
  presences = null;
  heldDiffs = [];
  showPresences();
}

function showPresences() {
  // One entry per key, by name; "Ann (2)" when a key has two metas (two connections).
  const people = [...(presences ?? [])].map(([key, metas]) => ({
    key,
    name: String(metas[0].name),
    count: metas.length,
  }));
  people.sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
  $("people").replaceChildren(
    ...people.map(({ name, count }) => {
      const li = document.createElement("li");
      li.textContent = count > 1 ? `${name} (${count})` : name;
      return li;
    }),
  );
}

// ---------------------------------------------------------------- camera

let localStream = null;

async function startCamera(deviceId) {
  if (!navigator.mediaDevices?.getUserMedia) {
    $("camera-state").textContent =
      "No camera here: browsers allow it only on https:// or http://localhost pages.";
    return;
  }
  for (const track of localStream?.getTracks() ?? []) track.stop();
  try {
    localStream = await navigator.mediaDevices.getUserMedia({
      video: deviceId ? { deviceId: { exact: deviceId } } : true,
      audio: false,
    });
  } catch (error) {
    localStream = null;
    $("camera-state").textContent = `Camera unavailable: ${error.name}. Chat and receiving calls still work.`;
    return;
  }
  $("camera-state").textContent = "";
  localVideo.srcObject = localStream;
  const [track] = localStream.getVideoTracks();
  await listCameras(track.getSettings().deviceId);
  // Switching cameras during a call swaps the track the peer receives.
  const sender = pc?.getSenders().find((s) => s.track?.kind === "video");
  if (sender) await sender.replaceTrack(track);
}

async function listCameras(selectedId = cameraSelect.value) {
  const cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  cameraSelect.replaceChildren(
    ...cameras.map((camera, i) => {
      const option = document.createElement("option");
      option.value = camera.deviceId;
      option.textContent = camera.label || `Camera ${i + 1}`; // labels appear once permission is given
      option.selected = camera.deviceId === selectedId;
      return option;
    }),
  );
  if (!cameras.length) cameraSelect.replaceChildren(new Option("(no camera found)", ""));
}

cameraSelect.addEventListener("change", () => startCamera(cameraSelect.value));
navigator.mediaDevices?.addEventListener("devicechange", () => listCameras());

$("snapshot-button").addEventListener("click", () => {
  if (!localVideo.videoWidth) {
    $("snapshot-hint").textContent = "The camera is not running yet.";
    return;
  }
  const canvas = $("canvas");
  canvas.getContext("2d").drawImage(localVideo, 0, 0, canvas.width, canvas.height);
  profilePicture = canvas.toDataURL("image/jpeg", 0.8);
  $("snapshot").src = profilePicture;
  $("snapshot").hidden = false;
  $("snapshot-hint").textContent = "Your messages now show this picture to the room.";
});

// ---------------------------------------------------------------- call
// Signalling goes through the `signal` route; each message is JSON carrying `from` (this
// page's id) and, once two pages have found each other, `to`. The handshake:
//   caller  -- user_here {call: true} -->  everyone in the signal room
//   callee  -- user_here {to: caller} -->  the caller (the first reply wins)
//   caller  -- SDP offer -->  callee  -- SDP answer -->  caller;  ice candidates both ways.
// If two pages press Call at once, the one with the smaller id becomes the callee.

let pc = null; // the RTCPeerConnection of the call in progress
let peer = null; // the other page's id
let calling = false;
let pendingCandidates = []; // candidates that came before the remote description
let giveUp = null; // a timer: nobody answered, or the offer never came
let signals = Promise.resolve(); // handle one signalling message at a time, in order

function signal(type, body) {
  socket.emit("signal", { type, room: SIGNAL_ROOM, message: JSON.stringify({ from: ME, ...body }) });
}

function setCallState(text) {
  callState.textContent = text;
  callButton.disabled = pc !== null || calling || giveUp !== null;
}

function waitFor(what) {
  clearTimeout(giveUp);
  giveUp = setTimeout(() => {
    giveUp = null;
    if (!pc) hangUp(`no ${what}`);
  }, 10_000);
}

callButton.addEventListener("click", () => {
  if (pc || calling) return;
  calling = true;
  waitFor("answer");
  setCallState("calling…");
  signal("user_here", { call: true });
});

socket.on("signaling_message", ({ type, message }) => {
  signals = signals
    .then(() => onSignal(type, JSON.parse(message)))
    .catch((error) => console.error("bad signalling message", type, message, error));
});

async function onSignal(type, m) {
  if (m.to && m.to !== ME) return; // meant for another page in the room
  if (type === "user_here") {
    if (m.call) {
      if (pc || (calling && ME > m.from)) return; // busy, or the other caller will answer us
      calling = false;
      waitFor("offer");
      setCallState("answering…");
      signal("user_here", { to: m.from });
    } else if (calling && !pc) {
      calling = false;
      createPeerConnection(m.from);
      await pc.setLocalDescription(await pc.createOffer());
      signal("SDP", { to: peer, sdp: pc.localDescription });
    }
  } else if (type === "SDP") {
    if (m.sdp.type === "offer" && !pc) {
      createPeerConnection(m.from);
      await pc.setRemoteDescription(m.sdp);
      await addPendingCandidates();
      await pc.setLocalDescription(await pc.createAnswer());
      signal("SDP", { to: peer, sdp: pc.localDescription });
    } else if (m.sdp.type === "answer" && pc && m.from === peer) {
      await pc.setRemoteDescription(m.sdp);
      await addPendingCandidates();
    }
  } else if (type === "ice candidate" && pc && m.from === peer) {
    if (pc.remoteDescription) await pc.addIceCandidate(m.candidate);
    else pendingCandidates.push(m.candidate);
  }
}

function createPeerConnection(other) {
  clearTimeout(giveUp);
  giveUp = null;
  peer = other;
  // No STUN/TURN servers: host candidates are enough between tabs or on a LAN.
  const connection = new RTCPeerConnection();
  pc = connection;
  if (localStream) {
    for (const track of localStream.getTracks()) connection.addTrack(track, localStream);
  } else {
    connection.addTransceiver("video", { direction: "recvonly" }); // no camera: receive only
  }
  connection.addEventListener("icecandidate", ({ candidate }) => {
    if (candidate && pc === connection) signal("ice candidate", { to: peer, candidate });
  });
  connection.addEventListener("track", ({ track, streams }) => {
    if (pc === connection) remoteVideo.srcObject = streams[0] ?? new MediaStream([track]);
  });
  connection.addEventListener("connectionstatechange", () => {
    if (pc !== connection) return;
    if (connection.connectionState === "failed") hangUp("failed");
    else setCallState(connection.connectionState);
  });
  setCallState(connection.connectionState);
}

async function addPendingCandidates() {
  for (const candidate of pendingCandidates) await pc.addIceCandidate(candidate);
  pendingCandidates = [];
}

function hangUp(state) {
  clearTimeout(giveUp);
  giveUp = null;
  pc?.close();
  pc = null;
  peer = null;
  calling = false;
  pendingCandidates = [];
  remoteVideo.srcObject = null;
  setCallState(state);
}

startCamera();
