// Read an MP4 the way a browser-side tool does (mp4box.js, GPAC's JavaScript parser) and print
// what it saw as one JSON object: brands, tracks, each track's samples (count, timing and a
// SHA-256 of their bytes), and any error it raised. Usage: node mp4box_check.cjs FILE
"use strict";
const fs = require("fs");
const crypto = require("crypto");
const MP4Box = require("mp4box");

const path = process.argv[2];
const data = fs.readFileSync(path);
const file = MP4Box.createFile();
const out = { errors: [], tracks: [] };
const samples = {};

file.onError = (e) => out.errors.push(String(e));
file.onReady = (info) => {
  out.major_brand = info.brands ? info.brands[0] : null;
  out.brands = info.brands;
  out.ftyp_major = file.ftyp ? file.ftyp.major_brand : null;
  out.compatible = file.ftyp ? file.ftyp.compatible_brands : [];
  for (const t of info.tracks) {
    out.tracks.push({ id: t.id, codec: t.codec, type: t.type, nb_samples: t.nb_samples,
                      timescale: t.timescale, duration: t.duration });
    samples[t.id] = { hash: crypto.createHash("sha256"), count: 0, times: [] };
    file.setExtractionOptions(t.id, null, { nbSamples: 1000000 });
  }
  file.onSamples = (id, _user, list) => {
    const s = samples[id];
    for (const sample of list) {
      s.hash.update(Buffer.from(sample.data));
      s.count += 1;
      s.times.push([sample.dts, sample.cts, sample.size, sample.is_sync ? 1 : 0]);
    }
  };
  file.start();
};

const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
buffer.fileStart = 0;
try {
  file.appendBuffer(buffer);
  file.flush();
} catch (e) {
  out.errors.push(String(e && e.stack || e));
}
out.samples = {};
for (const [id, s] of Object.entries(samples)) {
  out.samples[id] = { count: s.count, sha256: s.hash.digest("hex"), times: s.times };
}
process.stdout.write(JSON.stringify(out));
