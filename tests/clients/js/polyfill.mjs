// matrix-js-sdk 43 needs Promise.withResolvers (Node 22); Node 20 lacks it. Imported by each
// script before it loads the SDK.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
