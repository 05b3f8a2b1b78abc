// matrix-js-sdk with its Rust crypto (initRustCrypto) against a running matrix-edge server.
//
// Usage: node e2ee.mjs <base_url>
//
// 1. Alice and Bob register; both start a client with Rust crypto (in-memory store) and
//    Alice bootstraps cross-signing (/keys/device_signing/upload, /keys/signatures/upload).
// 2. Alice creates an encrypted room, Bob joins, Alice sends a message, Bob decrypts it.
// 3. Bob creates a server-side key backup; the room key he received is uploaded to it.
// 4. Bob logs in on a new device, restores the backup with the backup key and decrypts
//    Alice's earlier message; then Alice sends again and the new device decrypts it live.
// Prints one line per step; exits non-zero on the first failure.

import "./polyfill.mjs";

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.MATRIX_JS_LOG || "error");

const BASE = process.argv[2];
const PASSWORD = "correct horse battery staple";
const DEADLINE_MS = 30000;
const suffix = Math.random().toString(16).slice(2, 8);

function step(text) {
  console.log(`ok - ${text}`);
}

async function api(method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${BASE}/_matrix/client/v3${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

async function register(localpart) {
  const first = await api("POST", "/register", { username: localpart, password: PASSWORD });
  if (first.status !== 401) throw new Error(`register: ${JSON.stringify(first)}`);
  const done = await api("POST", "/register", {
    username: localpart,
    password: PASSWORD,
    auth: { type: "m.login.dummy", session: first.json.session },
    inhibit_login: true,
  });
  if (done.status !== 200) throw new Error(`register: ${JSON.stringify(done)}`);
  return done.json.user_id;
}

async function login(userId, deviceName) {
  const response = await api("POST", "/login", {
    type: "m.login.password",
    identifier: { type: "m.id.user", user: userId },
    password: PASSWORD,
    initial_device_display_name: deviceName,
  });
  if (response.status !== 200) throw new Error(`login: ${JSON.stringify(response)}`);
  return response.json;
}

async function startClient(userId, deviceName) {
  const session = await login(userId, deviceName);
  const client = sdk.createClient({
    baseUrl: BASE,
    userId,
    accessToken: session.access_token,
    deviceId: session.device_id,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  const prepared = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED") resolve();
    });
  });
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
  return client;
}

async function waitFor(what, check) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// The decrypted text of the room's encrypted message with this body, if the client has it.
async function decryptedMessage(client, roomId, body) {
  const room = client.getRoom(roomId);
  if (!room) return null;
  for (const event of room.getLiveTimeline().getEvents()) {
    if (!event.isEncrypted()) continue;
    if (event.isDecryptionFailure()) {
      await client.decryptEventIfNeeded(event, { isRetry: true });
    }
    if (event.getType() === "m.room.message" && event.getContent().body === body) return event;
  }
  return null;
}

async function main() {
  const aliceId = await register(`jsalice${suffix}`);
  const bobId = await register(`jsbob${suffix}`);
  const alice = await startClient(aliceId, "alice js");
  const bob = await startClient(bobId, "bob js");
  const clients = [alice, bob];
  try {
    step("two clients with Rust crypto started and synced");

    await alice.getCrypto().bootstrapCrossSigning({
      authUploadDeviceSigningKeys: async (makeRequest) => {
        await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: aliceId }, password: PASSWORD });
      },
    });
    const status = await alice.getCrypto().getCrossSigningStatus();
    if (!status.publicKeysOnDevice) {
      throw new Error(`cross-signing not set up: ${JSON.stringify(status)}`);
    }
    const signed = await api("POST", "/keys/query", { device_keys: { [aliceId]: [] } }, alice.getAccessToken());
    const ssk = Object.keys(signed.json.self_signing_keys[aliceId]?.keys || {})[0];
    const deviceSignatures = signed.json.device_keys[aliceId][alice.getDeviceId()].signatures[aliceId];
    if (!ssk || !deviceSignatures[ssk]) throw new Error(`device not signed: ${JSON.stringify(signed.json)}`);
    await waitFor("alice's device verified by cross-signing", async () => {
      const own = await alice.getCrypto().getDeviceVerificationStatus(aliceId, alice.getDeviceId());
      return own && own.crossSigningVerified;
    });
    step("alice bootstrapped cross-signing; her device is signed by her self-signing key");

    const { room_id: roomId } = await alice.createRoom({
      name: "js secret",
      invite: [bobId],
      initial_state: [
        { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
      ],
    });
    await waitFor("bob's invite", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
    await bob.joinRoom(roomId);
    await waitFor("bob's join at alice", () => alice.getRoom(roomId)?.getMember(bobId)?.membership === "join");
    step("encrypted room with both users joined");

    await alice.sendTextMessage(roomId, "hello from alice");
    const received = await waitFor("bob decrypting alice's message", () =>
      decryptedMessage(bob, roomId, "hello from alice"),
    );
    if (received.getSender() !== aliceId) throw new Error("wrong sender");
    step("bob decrypted alice's message");

    await bob.getCrypto().resetKeyBackup();
    const backupVersion = await bob.getCrypto().getActiveSessionBackupVersion();
    if (!backupVersion) throw new Error("bob's key backup is not active");
    await waitFor("the room key in bob's backup", async () => {
      const info = await api("GET", "/room_keys/version", undefined, bob.getAccessToken());
      return info.status === 200 && info.json.version === backupVersion && info.json.count > 0;
    });
    const backupKey = await bob.getCrypto().getSessionBackupPrivateKey();
    if (!backupKey) throw new Error("no backup decryption key cached");
    step(`bob backed up his room keys (version ${backupVersion})`);

    const bob2 = await startClient(bobId, "bob js second device");
    clients.push(bob2);
    await waitFor("the room on bob's new device", () => bob2.getRoom(roomId));
    await bob2.getCrypto().storeSessionBackupPrivateKey(backupKey, backupVersion);
    const restored = await bob2.getCrypto().restoreKeyBackup();
    if (restored.imported < 1) throw new Error(`nothing restored: ${JSON.stringify(restored)}`);
    await waitFor("bob's new device decrypting the old message", () =>
      decryptedMessage(bob2, roomId, "hello from alice"),
    );
    step(`bob's new device restored ${restored.imported} key(s) and decrypted the old message`);

    await alice.sendTextMessage(roomId, "hello to both of bob's devices");
    await waitFor("bob's new device decrypting a new message", () =>
      decryptedMessage(bob2, roomId, "hello to both of bob's devices"),
    );
    await waitFor("bob's first device decrypting the new message", () =>
      decryptedMessage(bob, roomId, "hello to both of bob's devices"),
    );
    step("alice's next message reached both of bob's devices");
  } finally {
    for (const client of clients) client.stopClient();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`not ok - ${error && error.stack ? error.stack : error}`);
    process.exit(1);
  },
);
