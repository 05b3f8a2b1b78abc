// The rich messaging Element uses every day, through matrix-js-sdk's own API, against a
// running matrix-edge server.
//
// Usage: node messaging.mjs <base_url>
//
// Alice and Bob register with the SDK and sync with threadSupport on (so the SDK's filter
// asks for unread_thread_notifications). In one room they exercise:
//  1. edits (m.replace): the edited content through the SDK's live model, and the server's
//     bundled m.replace on /event and /messages;
//  2. reactions (m.annotation) listed by /relations (client.relations);
//  3. replies (m.in_reply_to) and mentions (m.mentions) giving the mentioned user a highlight;
//  4. threads: the SDK's thread model, /threads (client.createThreadListMessagesRequest) with
//     include=all and participated, and the bundled m.thread aggregation;
//  5. threaded read receipts (thread_id) resetting one thread's unread counts only;
//  6. redactions of an edit, of an edited message and of a reaction (aggregations follow);
//  7. a fresh device's initial sync applies the bundled edits and thread summaries;
//  8. a room upgrade (client.upgradeRoom): tombstone, predecessor, upgrade history;
//  9. a space with a child room seen through client.getRoomHierarchy.
// Prints "ok - <step>" per step; on failure prints "not ok - <step>: <expected vs got>" and
// exits non-zero.

import "./polyfill.mjs";

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const { FeatureSupport } = await import("matrix-js-sdk/lib/models/thread.js");
logger.setLevel(process.env.MATRIX_JS_LOG || "error");
// The clients' own (child) loggers print at debug level; keep them quiet unless asked.
const quiet = {
  trace() {}, debug() {}, info() {}, warn() {}, error() {},
  getChild() {
    return quiet;
  },
};
const clientLogger = process.env.MATRIX_JS_LOG ? undefined : quiet;

const BASE = process.argv[2];
const PASSWORD = "correct horse battery staple";
const DEADLINE_MS = 15000;
const suffix = Math.random().toString(16).slice(2, 8);
const { NotificationCountType, Direction, ThreadFilterType } = sdk;

let current = "setup";

class StepFailure extends Error {}

function begin(name) {
  current = name;
}

function step(text) {
  console.log(`ok - ${text}`);
}

function show(value) {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

function expect(condition, expected, got) {
  if (!condition) throw new StepFailure(`expected ${expected}; got ${show(got)}`);
}

async function waitFor(what, check) {
  const deadline = Date.now() + DEADLINE_MS;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new StepFailure(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function register(localpart) {
  const anon = sdk.createClient({ baseUrl: BASE, logger: clientLogger });
  try {
    await anon.registerRequest({ username: localpart, password: PASSWORD });
  } catch (err) {
    if (err.httpStatus !== 401) throw err;
    await anon.registerRequest({
      username: localpart,
      password: PASSWORD,
      auth: { type: "m.login.dummy", session: err.data.session },
      inhibit_login: true,
    });
  }
}

async function startClient(localpart, deviceName, initialSyncLimit = 50) {
  const anon = sdk.createClient({ baseUrl: BASE, logger: clientLogger });
  const login = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: localpart },
    password: PASSWORD,
    initial_device_display_name: deviceName,
  });
  const client = sdk.createClient({
    baseUrl: BASE,
    accessToken: login.access_token,
    userId: login.user_id,
    deviceId: login.device_id,
    timelineSupport: true,
    logger: clientLogger,
  });
  const prepared = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED") resolve();
    });
  });
  await client.startClient({ initialSyncLimit, threadSupport: true });
  await prepared;
  return client;
}

// The event with this ID as the client's model holds it: main timeline or any thread.
function modelEvent(client, roomId, eventId) {
  const room = client.getRoom(roomId);
  if (!room) return null;
  return room.findEventById(eventId) || null;
}

function relationsOf(event) {
  return (event && event.unsigned && event.unsigned["m.relations"]) || {};
}

function counts(room, threadId) {
  if (threadId) {
    return {
      total: room.getThreadUnreadNotificationCount(threadId, NotificationCountType.Total),
      highlight: room.getThreadUnreadNotificationCount(threadId, NotificationCountType.Highlight),
    };
  }
  // The main timeline's own counts (getUnreadNotificationCount adds every thread's).
  return {
    total: room.getRoomUnreadNotificationCount(NotificationCountType.Total),
    highlight: room.getRoomUnreadNotificationCount(NotificationCountType.Highlight),
  };
}

function text(body) {
  return { msgtype: "m.text", body };
}

function edit(originalId, body) {
  return {
    msgtype: "m.text",
    body: `* ${body}`,
    "m.new_content": { msgtype: "m.text", body },
    "m.relates_to": { rel_type: "m.replace", event_id: originalId },
  };
}

function reaction(targetId, key) {
  return { "m.relates_to": { rel_type: "m.annotation", event_id: targetId, key } };
}

async function main() {
  const started = Date.now();
  await register(`msgalice${suffix}`);
  await register(`msgbob${suffix}`);
  const alice = await startClient(`msgalice${suffix}`, "alice messaging");
  const bob = await startClient(`msgbob${suffix}`, "bob messaging");
  const clients = [alice, bob];
  const aliceId = alice.getUserId();
  const bobId = bob.getUserId();
  const serverName = aliceId.split(":").slice(1).join(":");
  try {
    begin("room with both users");
    expect(alice.supportsThreads() && sdk.Thread.hasServerSideSupport === FeatureSupport.Stable,
      "stable server-side thread support (versions >= v1.4)", sdk.Thread.hasServerSideSupport);
    const { room_id: roomId } = await alice.createRoom({ name: "rich messaging", invite: [bobId] });
    await waitFor("bob's invite", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
    await bob.joinRoom(roomId);
    await waitFor("bob's join at alice", () => alice.getRoom(roomId)?.getMember(bobId)?.membership === "join");
    step("alice and bob share a room, both syncing with threadSupport");

    // 1. Edits.
    begin("edits");
    const { event_id: originalId } = await alice.sendMessage(roomId, text("helo wrld"));
    const { event_id: firstEditId } = await alice.sendMessage(roomId, edit(originalId, "hello world"));
    const edited = await waitFor("bob's model applying alice's edit", () => {
      const event = modelEvent(bob, roomId, originalId);
      return event && event.replacingEventId() === firstEditId ? event : null;
    });
    expect(edited.getContent().body === "hello world", "getContent().body 'hello world' after the edit",
      edited.getContent());
    expect(edited.getOriginalContent().body === "helo wrld", "the original content kept", edited.getOriginalContent());
    const fetched = await bob.fetchRoomEvent(roomId, originalId);
    const bundledEdit = relationsOf(fetched)["m.replace"];
    expect(bundledEdit && bundledEdit.event_id === firstEditId,
      `/event bundling m.replace ${firstEditId} (the whole edit event)`, fetched.unsigned);
    expect(bundledEdit.content?.["m.new_content"]?.body === "hello world",
      "the bundled edit with its m.new_content", bundledEdit);
    expect(fetched.content.body === "helo wrld", "/event serving the original content (spec v1.7)", fetched.content);
    const page = await bob.createMessagesRequest(roomId, null, 30, Direction.Backward);
    const inPage = page.chunk.find((e) => e.event_id === originalId);
    expect(relationsOf(inPage)["m.replace"]?.event_id === firstEditId,
      "/messages bundling the edit with the original", inPage);
    step("an edit shows in bob's model and is bundled on /event and /messages");

    // 2. Reactions.
    begin("reactions");
    const { event_id: bobThumbId } = await bob.sendEvent(roomId, "m.reaction", reaction(originalId, "👍"));
    await alice.sendEvent(roomId, "m.reaction", reaction(originalId, "👍"));
    const { event_id: bobPartyId } = await bob.sendEvent(roomId, "m.reaction", reaction(originalId, "🎉"));
    const annotations = await bob.relations(roomId, originalId, "m.annotation", "m.reaction");
    const keys = annotations.events.map((e) => e.getRelation()?.key).sort();
    expect(annotations.events.length === 3 && show(keys) === show(["👍", "👍", "🎉"].sort()),
      "three reactions (👍 x2, 🎉) from /relations/{id}/m.annotation/m.reaction", keys);
    expect(annotations.originalEvent?.getId() === originalId, "relations() returning the parent event",
      annotations.originalEvent?.getId());
    const paged = await bob.relations(roomId, originalId, "m.annotation", null, { limit: 2 });
    expect(paged.events.length === 2 && paged.nextBatch, "a first page of 2 with a next_batch",
      { n: paged.events.length, next: paged.nextBatch });
    const rest = await bob.relations(roomId, originalId, "m.annotation", null, { limit: 2, from: paged.nextBatch });
    expect(rest.events.length === 1 && !rest.nextBatch, "a last page of 1 without next_batch",
      { n: rest.events.length, next: rest.nextBatch });
    const aliceRoom = alice.getRoom(roomId);
    const byKey = await waitFor("alice's model aggregating the reactions", () => {
      const rel = aliceRoom.relations.getChildEventsForEvent(originalId, "m.annotation", "m.reaction");
      const sorted = rel?.getSortedAnnotationsByKey();
      return sorted && sorted.reduce((n, [, events]) => n + events.size, 0) === 3 ? sorted : null;
    });
    expect(byKey[0][0] === "👍" && byKey[0][1].size === 2, "👍 first with two senders",
      byKey.map(([k, s]) => [k, s.size]));
    step("reactions are listed and paginated by /relations and aggregated in alice's model");

    // 3. Replies and mentions.
    begin("replies and mentions");
    await alice.sendReadReceipt(aliceRoom.getLiveTimeline().getEvents().at(-1));
    await waitFor("alice's counts at zero after her receipt", () => counts(aliceRoom).total === 0);
    const { event_id: replyId } = await bob.sendMessage(roomId, {
      msgtype: "m.text",
      body: `> <${aliceId}> hello world\n\nAlice, nice to see you`,
      "m.relates_to": { "m.in_reply_to": { event_id: originalId } },
      "m.mentions": { user_ids: [aliceId] },
    });
    const reply = await waitFor("bob's reply at alice", () => modelEvent(alice, roomId, replyId));
    expect(reply.replyEventId === originalId, `replyEventId ${originalId}`, reply.replyEventId);
    expect(!reply.threadRootId, "a plain reply outside any thread", reply.threadRootId);
    const mentioned = await waitFor("alice's highlight count for the mention", () => {
      const c = counts(aliceRoom);
      return c.highlight >= 1 ? c : null;
    });
    expect(mentioned.total >= 1, "the mention counted as a notification too", mentioned);
    const pushActions = alice.getPushActionsForEvent(reply);
    expect(pushActions?.tweaks?.highlight === true, "the SDK's push rules highlighting the mention too",
      pushActions);
    const { event_id: plainId } = await bob.sendMessage(roomId, text("no mention here"));
    await waitFor("bob's plain message at alice", () => modelEvent(alice, roomId, plainId));
    await waitFor("the count taking the plain message", () => counts(aliceRoom).total >= mentioned.total + 1);
    expect(counts(aliceRoom).highlight === mentioned.highlight, "no highlight for an unmentioned message",
      counts(aliceRoom));
    await alice.sendReadReceipt(modelEvent(alice, roomId, plainId));
    await waitFor("alice's counts reset by her main receipt", () => {
      const c = counts(aliceRoom);
      return c.total === 0 && c.highlight === 0;
    });
    step("a reply with m.mentions highlights alice; her read receipt resets the counts");

    // 4. Threads.
    begin("threads");
    const { event_id: rootId } = await alice.sendMessage(roomId, text("thread root from alice"));
    await waitFor("alice's root at bob", () => modelEvent(bob, roomId, rootId));
    const { event_id: bobReplyId } = await bob.sendMessage(roomId, rootId, text("bob in the thread"));
    const { event_id: aliceReplyId } = await alice.sendMessage(roomId, rootId, text("alice in the thread"));
    const bobRoom = bob.getRoom(roomId);
    const thread = await waitFor("bob's thread model holding both replies", () => {
      const t = bobRoom.getThread(rootId);
      return t && t.findEventById(bobReplyId) && t.findEventById(aliceReplyId) ? t : null;
    });
    expect(thread.length === 2, "thread.length 2", thread.length);
    expect(thread.replyToEvent?.getId() === aliceReplyId, `latest reply ${aliceReplyId}`, thread.replyToEvent?.getId());
    expect(!bobRoom.getLiveTimeline().getEvents().some((e) => e.getId() === aliceReplyId),
      "thread replies kept out of the main timeline", "a reply in the main timeline");
    const { event_id: bobRootId } = await bob.sendMessage(roomId, text("bob's own thread"));
    const { event_id: bobOwnReplyId } = await bob.sendMessage(roomId, bobRootId, text("bob talks to himself"));

    const root = await alice.fetchRoomEvent(roomId, rootId);
    const summary = relationsOf(root)["m.thread"];
    expect(summary && summary.count === 2 && summary.latest_event?.event_id === aliceReplyId
      && summary.current_user_participated === true,
      "bundled m.thread {count: 2, latest_event: alice's reply, current_user_participated: true}", summary);
    const otherRoot = await alice.fetchRoomEvent(roomId, bobRootId);
    const other = relationsOf(otherRoot)["m.thread"];
    expect(other && other.count === 1 && other.latest_event?.event_id === bobOwnReplyId
      && other.current_user_participated === false,
      "bob's thread bundled for alice with current_user_participated false", other);

    const all = await alice.createThreadListMessagesRequest(roomId, null, 20, Direction.Backward, ThreadFilterType.All);
    const listed = all.chunk.map((e) => e.event_id);
    // The server answers latest activity first; the SDK reverses the chunk (oldest first).
    expect(show(listed) === show([rootId, bobRootId]),
      "/threads listing both roots, latest activity last once the SDK reversed them", listed);
    const mine = await alice.createThreadListMessagesRequest(roomId, null, 20, Direction.Backward, ThreadFilterType.My);
    expect(show(mine.chunk.map((e) => e.event_id)) === show([rootId]),
      "/threads?include=participated listing only alice's thread", mine.chunk.map((e) => e.event_id));
    const firstPage = await alice.createThreadListMessagesRequest(roomId, null, 1, Direction.Backward, ThreadFilterType.All);
    expect(firstPage.chunk.length === 1 && firstPage.end, "a page of one thread with an end token", firstPage);
    const secondPage = await alice.createThreadListMessagesRequest(roomId, firstPage.end, 1, Direction.Backward,
      ThreadFilterType.All);
    expect(secondPage.chunk[0]?.event_id === rootId, "the second page holding the older thread",
      secondPage.chunk.map((e) => e.event_id));
    const threadReplies = await alice.relations(roomId, rootId, "m.thread");
    expect(show(threadReplies.events.map((e) => e.getId())) === show([aliceReplyId, bobReplyId]),
      "/relations/{root}/m.thread newest first", threadReplies.events.map((e) => e.getId()));
    step("threads: the SDK's thread model, /threads (all, participated, paginated), bundled m.thread");

    // 5. Threaded read receipts and per-thread unread counts.
    begin("threaded receipts");
    await bob.sendReadReceipt(bobRoom.getLiveTimeline().getEvents().at(-1));
    await bob.sendReadReceipt(thread.replyToEvent);
    await waitFor("bob's main and thread counts at zero after his receipts", () =>
      counts(bobRoom).total === 0 && counts(bobRoom, rootId).total === 0);
    const { event_id: inThreadId } = await alice.sendMessage(roomId, rootId, text("more in the thread"));
    const { event_id: mentionInThreadId } = await alice.sendMessage(roomId, rootId, {
      msgtype: "m.text", body: "Bob, look here", "m.mentions": { user_ids: [bobId] },
    });
    const threadCounts = await waitFor("bob's per-thread unread counts", () => {
      const c = counts(bobRoom, rootId);
      return c.total === 2 && c.highlight === 1 ? c : null;
    }).catch((err) => {
      throw new StepFailure(`${err.message}: expected thread ${rootId} {total 2, highlight 1}; got ` +
        `${show(counts(bobRoom, rootId))}, main ${show(counts(bobRoom))}`);
    });
    expect(counts(bobRoom).total === 0, "the thread's messages not counted in the main timeline",
      { main: counts(bobRoom), thread: threadCounts });
    expect(bobRoom.getUnreadNotificationCount(NotificationCountType.Total) === 2,
      "the room's total (the SDK adds the threads) of 2", bobRoom.getUnreadNotificationCount());
    const { event_id: mainId } = await alice.sendMessage(roomId, text("main timeline again"));
    await waitFor("main count 1 at bob", () => counts(bobRoom).total === 1);
    const receiptTarget = await waitFor("the mention in bob's thread", () => modelEvent(bob, roomId, mentionInThreadId));
    expect(receiptTarget.threadRootId === rootId, "the SDK placing the mention in the thread",
      receiptTarget.threadRootId);
    await bob.sendReadReceipt(receiptTarget);
    const receiptAtAlice = await waitFor("bob's threaded receipt at alice", () => {
      const t = alice.getRoom(roomId).getThread(rootId);
      return t && t.hasUserReadEvent(bobId, mentionInThreadId) ? t : null;
    });
    expect(receiptAtAlice.getEventReadUpTo(bobId, true) === mentionInThreadId,
      "alice's thread model reading bob's receipt on the mention", receiptAtAlice.getEventReadUpTo(bobId, true));
    // A later message makes the server send bob's room again: the counts below come from it.
    const { event_id: laterId } = await alice.sendMessage(roomId, text("after the threaded receipt"));
    await waitFor("the later message at bob", () => modelEvent(bob, roomId, laterId));
    const afterReceipt = await waitFor("the thread's counts reset by the threaded receipt", () => {
      const t = counts(bobRoom, rootId);
      const m = counts(bobRoom);
      return t.total === 0 && t.highlight === 0 && m.total === 2 ? { thread: t, main: m } : null;
    }).catch((err) => {
      throw new StepFailure(`${err.message}: expected thread {0, 0} and main total 2; got thread ` +
        `${show(counts(bobRoom, rootId))}, main ${show(counts(bobRoom))}`);
    });
    expect(afterReceipt.main.highlight === 0, "no main highlight", afterReceipt);
    await bob.sendReadReceipt(modelEvent(bob, roomId, laterId));
    await waitFor("bob's main count reset by a main receipt", () => counts(bobRoom).total === 0);
    void mainId;
    step("threaded receipts reset one thread's unread_thread_notifications; the main timeline counts apart");

    // 5b. An edit inside a thread: Element sends it with sendMessage(room, threadId, ...).
    begin("edit in a thread");
    const { event_id: threadEditId } = await alice.sendMessage(roomId, rootId,
      edit(mentionInThreadId, "Bob, look here (edited)"));
    await waitFor("bob's model applying the edit of the thread reply", () =>
      modelEvent(bob, roomId, mentionInThreadId)?.getContent().body === "Bob, look here (edited)");
    const editedRoot = await bob.fetchRoomEvent(roomId, rootId);
    const latest = relationsOf(editedRoot)["m.thread"]?.latest_event;
    expect(latest?.event_id === mentionInThreadId && relationsOf(latest)["m.replace"]?.event_id === threadEditId,
      "the bundled m.thread latest_event carrying its own bundled m.replace", editedRoot.unsigned);
    expect(relationsOf(editedRoot)["m.thread"].count === 4, "the edit not counted as a thread reply",
      relationsOf(editedRoot)["m.thread"]);
    const { event_id: pingId } = await alice.sendMessage(roomId, text("ping after the edit"));
    await waitFor("the ping at bob", () => modelEvent(bob, roomId, pingId));
    expect(counts(bobRoom, rootId).total === 0, "no notification for an edit (.m.rule.suppress_edits)",
      counts(bobRoom, rootId));
    await bob.sendReadReceipt(modelEvent(bob, roomId, pingId));
    step("an edit in a thread: applied by the SDK, bundled inside m.thread's latest_event, silent");

    // 6. Redactions.
    begin("redactions");
    const { event_id: secondEditId } = await alice.sendMessage(roomId, edit(originalId, "hello, world"));
    const twice = await alice.fetchRoomEvent(roomId, originalId);
    expect(relationsOf(twice)["m.replace"]?.event_id === secondEditId, "the newest edit bundled", twice.unsigned);
    await alice.redactEvent(roomId, secondEditId);
    const back = await alice.fetchRoomEvent(roomId, originalId);
    expect(relationsOf(back)["m.replace"]?.event_id === firstEditId,
      "the bundle falling back to the first edit once the second is redacted", back.unsigned);
    await waitFor("bob's model falling back to the first edit", () => {
      const event = modelEvent(bob, roomId, originalId);
      return event && event.getContent().body === "hello world";
    });
    await bob.redactEvent(roomId, bobThumbId);
    const fewer = await bob.relations(roomId, originalId, "m.annotation");
    const left = fewer.events.map((e) => e.getId());
    expect(left.length === 2 && !left.includes(bobThumbId) && left.includes(bobPartyId),
      "the redacted reaction gone from /relations, two left", left);
    await waitFor("alice's model dropping bob's 👍", () => {
      const rel = aliceRoom.relations.getChildEventsForEvent(originalId, "m.annotation", "m.reaction");
      const thumbs = rel?.getSortedAnnotationsByKey()?.find(([key]) => key === "👍");
      return thumbs && thumbs[1].size === 1;
    });
    await alice.redactEvent(roomId, originalId);
    const gone = await bob.fetchRoomEvent(roomId, originalId);
    expect(gone.unsigned?.redacted_because && Object.keys(gone.content).length === 0,
      "the original redacted (empty content, redacted_because)", gone);
    expect(!relationsOf(gone)["m.replace"], "no m.replace bundled with a redacted original", gone.unsigned);
    await waitFor("bob's model redacting the original", () => modelEvent(bob, roomId, originalId)?.isRedacted());
    await alice.redactEvent(roomId, rootId, inThreadId);
    const shorter = relationsOf(await bob.fetchRoomEvent(roomId, rootId))["m.thread"];
    expect(shorter?.count === 3 && shorter.latest_event?.event_id === mentionInThreadId,
      "the thread's bundled count down to 3 once a reply is redacted", shorter);
    const stillThere = (await bob.relations(roomId, rootId, "m.thread")).events.map((e) => e.getId());
    expect(stillThere.length === 3 && !stillThere.includes(inThreadId), "the redacted reply gone from /relations",
      stillThere);
    step("redacting an edit, a reaction, the edited message and a thread reply updates the aggregations");

    // 7. A fresh device: the initial sync applies bundled edits and thread summaries.
    begin("fresh device");
    const { event_id: keptId } = await alice.sendMessage(roomId, text("kept message"));
    const { event_id: keptEditId } = await alice.sendMessage(roomId, edit(keptId, "kept, edited"));
    // A short initial sync window, as a phone would use: older events come from the server.
    const bob2 = await startClient(`msgbob${suffix}`, "bob second device", 3);
    clients.push(bob2);
    const kept = await waitFor("the kept message on bob's new device", () => modelEvent(bob2, roomId, keptId));
    expect(kept.replacingEventId() === keptEditId && kept.getContent().body === "kept, edited",
      "the initial sync's bundled edit applied", { replacing: kept.replacingEventId(), content: kept.getContent() });
    const bob2Room = bob2.getRoom(roomId);
    // The thread panel, as Element opens it: /threads (all and participated) into thread models.
    await bob2Room.createThreadsTimelineSets();
    await bob2Room.fetchRoomThreads();
    const freshThread = await waitFor("alice's thread on bob's new device", () => bob2Room.getThread(rootId));
    await waitFor("the thread's length from the bundle", () => freshThread.length === 3);
    expect(freshThread.hasCurrentUserParticipated === true, "bob participated", freshThread.hasCurrentUserParticipated);
    const myThreads = bob2Room.threadsTimelineSets[1]?.getLiveTimeline().getEvents().map((e) => e.getId()) || [];
    expect(myThreads.includes(rootId) && myThreads.includes(bobRootId), "both threads in bob's 'My threads' list",
      myThreads);
    // Opening the thread: the SDK pages its replies through /relations.
    const replies = [bobReplyId, aliceReplyId, mentionInThreadId];
    await waitFor("the thread's replies loaded through /relations", () =>
      replies.every((id) => freshThread.findEventById(id)));
    const loadedEdit = freshThread.findEventById(mentionInThreadId);
    expect(loadedEdit.getContent().body === "Bob, look here (edited)",
      "the paged reply shown edited (its bundled m.replace)", loadedEdit.getContent());
    // Jumping to an event outside the loaded window (/context), in the main timeline and in a thread.
    const mainTimeline = await bob2.getEventTimeline(bob2Room.getUnfilteredTimelineSet(), replyId);
    expect(mainTimeline?.getEvents().some((e) => e.getId() === replyId),
      "getEventTimeline holding the reply (GET /context)", mainTimeline?.getEvents().map((e) => e.getId()));
    const threadTimeline = await bob2.getEventTimeline(freshThread.timelineSet, aliceReplyId);
    const threadIds = threadTimeline?.getEvents().map((e) => e.getId()) || [];
    expect(threadIds.includes(aliceReplyId) && threadIds.includes(bobReplyId),
      "the thread timeline around a reply (/context and /relations both ways)", threadIds);
    step("a new device: bundled edit in its initial sync, the thread list, thread pagination and /context");

    // 8. Room upgrade.
    begin("room upgrade");
    const versions = await alice.getCapabilities();
    const target = versions["m.room_versions"]?.default;
    expect(typeof target === "string", "a default room version in capabilities", versions);
    const { replacement_room: newRoomId } = await alice.upgradeRoom(roomId, target);
    const tombstone = await waitFor("the tombstone at bob", () =>
      bob.getRoom(roomId)?.currentState.getStateEvents("m.room.tombstone", ""));
    expect(tombstone.getContent().replacement_room === newRoomId, `tombstone naming ${newRoomId}`, tombstone.getContent());
    // Membership is not carried over (spec "Room Upgrades"): as Element does, alice invites.
    await alice.invite(newRoomId, bobId);
    await waitFor("bob's invite to the new room", () => bob.getRoom(newRoomId)?.getMyMembership() === "invite");
    await bob.joinRoom(newRoomId);
    const newRoom = await waitFor("the new room at bob", () =>
      bob.getRoom(newRoomId)?.getMyMembership() === "join" ? bob.getRoom(newRoomId) : null);
    const predecessor = newRoom.findPredecessor();
    expect(predecessor?.roomId === roomId, `the new room's predecessor ${roomId}`, predecessor);
    expect(newRoom.getVersion() === target, `room version ${target}`, newRoom.getVersion());
    const history = bob.getRoomUpgradeHistory(newRoomId, true).map((r) => r.roomId);
    expect(show(history) === show([roomId, newRoomId]), "upgrade history [old, new] with verified links", history);
    expect(newRoom.name === "rich messaging", "the name copied to the new room", newRoom.name);
    const refused = await bob.sendMessage(roomId, text("into the old room")).then(() => null, (err) => err);
    expect(refused?.httpStatus === 403, "bob's message to the old room refused (events_default raised)",
      refused ? refused.data : "the message was accepted");
    step(`room upgraded to v${target}: tombstone, predecessor and upgrade history`);

    // 9. A space and its child.
    begin("space hierarchy");
    const { room_id: spaceId } = await alice.createRoom({
      name: "messaging space", creation_content: { type: "m.space" }, preset: "public_chat",
    });
    const { room_id: childId } = await alice.createRoom({ name: "space child", preset: "public_chat" });
    await alice.sendStateEvent(spaceId, "m.space.child", { via: [serverName], suggested: true }, childId);
    await alice.sendStateEvent(childId, "m.space.parent", { via: [serverName], canonical: true }, spaceId);
    const hierarchy = await bob.getRoomHierarchy(spaceId, 10, 2);
    const ids = hierarchy.rooms.map((r) => r.room_id);
    expect(ids[0] === spaceId && ids.includes(childId), "the space first, then its child", ids);
    const spaceEntry = hierarchy.rooms[0];
    expect(spaceEntry.room_type === "m.space" && spaceEntry.children_state.some((s) => s.state_key === childId),
      "the space with room_type m.space and its m.space.child in children_state", spaceEntry);
    const childEntry = hierarchy.rooms.find((r) => r.room_id === childId);
    expect(childEntry.name === "space child" && childEntry.num_joined_members === 1 && childEntry.join_rule === "public",
      "the child's summary (name, one member, public)", childEntry);
    const suggested = await bob.getRoomHierarchy(spaceId, 10, 2, true);
    expect(suggested.rooms.some((r) => r.room_id === childId), "the suggested child kept by suggested_only",
      suggested.rooms.map((r) => r.room_id));
    step("a space and its child through client.getRoomHierarchy");

    console.log(`# ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    for (const client of clients) client.stopClient();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    const detail = error instanceof StepFailure ? error.message : (error && error.stack) || String(error);
    const server = error && error.httpStatus ? ` (HTTP ${error.httpStatus} ${show(error.data)})` : "";
    console.log(`not ok - ${current}: ${detail}${server}`);
    console.error(`not ok - ${current}: ${detail}${server}`);
    process.exit(1);
  },
);
