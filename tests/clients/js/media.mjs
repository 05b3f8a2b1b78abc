// matrix-js-sdk uploads and downloads media through a running matrix-edge server.
//
// Usage: node media.mjs <base_url>
//
// A user registers and logs in with the SDK, reads the media config, uploads a PNG and a
// 2 MB binary with client.uploadContent, downloads both through the authenticated media
// endpoints (the URLs the SDK builds with useAuthentication) and compares the bytes, asks
// for a thumbnail, and checks that a download without the token is refused.
// Prints one line per step; exits non-zero on the first failure.

import "./polyfill.mjs";

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.MATRIX_JS_LOG || "error");

const BASE = process.argv[2];
const PASSWORD = "correct horse battery staple";
const suffix = Math.random().toString(16).slice(2, 8);
// A 2x2 red PNG.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMAAAAkYAQGbp8tVAAAAAElFTkSuQmCC",
  "base64",
);

function step(text) {
  console.log(`ok - ${text}`);
}

function same(a, b) {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

const anon = sdk.createClient({ baseUrl: BASE });
const localpart = `media_${suffix}`;
try {
  await anon.registerRequest({ username: localpart, password: PASSWORD });
} catch (err) {
  if (err.httpStatus !== 401) throw err;
  await anon.registerRequest({
    username: localpart,
    password: PASSWORD,
    auth: { type: "m.login.dummy", session: err.data.session },
  });
}
const login = await anon.loginRequest({
  type: "m.login.password", identifier: { type: "m.id.user", user: localpart }, password: PASSWORD,
});
const client = sdk.createClient({
  baseUrl: BASE, accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id,
});
const token = login.access_token;
step("registered and logged in");

const config = await client.getMediaConfig(true);
if (!(config["m.upload.size"] > 2 * 1024 * 1024)) throw new Error(`media config: ${JSON.stringify(config)}`);
step("media config read");

async function roundTrip(bytes, name, type) {
  const { content_uri: mxc } = await client.uploadContent(bytes, { name, type });
  if (!mxc.startsWith("mxc://")) throw new Error(`upload answered ${mxc}`);
  const url = client.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  if (response.status !== 200) throw new Error(`download ${url}: ${response.status}`);
  const body = new Uint8Array(await response.arrayBuffer());
  if (!same(body, bytes)) throw new Error(`download of ${name} differs (${body.length} bytes)`);
  if (!(response.headers.get("content-type") || "").startsWith(type)) {
    throw new Error(`content-type ${response.headers.get("content-type")} for ${type}`);
  }
  return { mxc, url };
}

const picture = await roundTrip(PNG, "red.png", "image/png");
step("PNG uploaded and downloaded byte for byte");
const big = Buffer.alloc(2 * 1024 * 1024);
for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
await roundTrip(big, "blob.bin", "application/octet-stream");
step("2 MB file uploaded and downloaded byte for byte");

const thumbUrl = client.mxcUrlToHttp(picture.mxc, 32, 32, "crop", false, true, true);
const thumb = await fetch(thumbUrl, { headers: { Authorization: `Bearer ${token}` } });
if (thumb.status !== 200 || !(thumb.headers.get("content-type") || "").startsWith("image/")) {
  throw new Error(`thumbnail: ${thumb.status} ${thumb.headers.get("content-type")}`);
}
step("thumbnail served");

const anonymous = await fetch(picture.url);
if (anonymous.status !== 401) throw new Error(`download without a token: ${anonymous.status}`);
step("download without a token refused");
process.exit(0);
