// VoxelScope cortical surface viewer: a Streamlit components-v2 renderer built on three.js.
//
// Geometry comes once per surface as gzip-compressed static files (see backend/meshdata.py) that the
// browser caches; each rerun sends only a small binary message: a JSON header (view, colour map,
// range, threshold, labels, selection) followed by the overlay as uint16 codes and the ROI index as
// uint8, one per vertex. Colours, thresholds, outlines and labels are computed here, so an overlay
// change costs one message and one recolour. A click on the surface picks the vertex under the
// cursor and reports it to Python (trigger "pick").
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";

const G = (window.__voxelscope ||= {});
G.viewers ||= [];
G.paints ||= [];
G.blobs ||= new Map();
G.raw ||= new Map(); // url -> Promise<ArrayBuffer> of the gzip file (the loader may have started it)
const NO_VALUE = 65535;
const TYPED = { uint8: Uint8Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, float32: Float32Array };
const HEMIS = ["lh", "rh"];
const DEG = Math.PI / 180;

function unpack(buf) {
  const u8 = new Uint8Array(buf);
  if (String.fromCharCode(...u8.subarray(0, 4)) !== "VSM1") throw new Error("not a VoxelScope mesh file");
  const n = new DataView(buf).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(u8.subarray(8, 8 + n)));
  const base = 8 + n;
  const arrays = {};
  for (const e of header.arrays) {
    const T = TYPED[e.dtype];
    arrays[e.name] = new T(buf, base + e.offset, e.nbytes / T.BYTES_PER_ELEMENT);
  }
  return { header, arrays };
}

function fetchMesh(url) {
  if (!G.blobs.has(url)) {
    const p = (async () => {
      if (!G.raw.has(url)) {
        G.raw.set(url, fetch(url).then((r) => {
          if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
          return r.arrayBuffer();
        }));
      }
      const gz = await G.raw.get(url);
      const stream = new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"));
      return unpack(await new Response(stream).arrayBuffer());
    })();
    p.catch(() => { G.blobs.delete(url); G.raw.delete(url); });
    G.blobs.set(url, p);
  }
  return G.blobs.get(url);
}

function decodeFaces(enc) {
  const out = new Uint32Array(enc.length);
  let first = 0;
  for (let i = 0; i < enc.length; i += 3) {
    first += enc[i];
    out[i] = first;
    out[i + 1] = first + enc[i + 1];
    out[i + 2] = first + enc[i + 2];
  }
  return out;
}

function parseMessage(data) {
  let u8 = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data)
    : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
  if (!u8) throw new Error("viewer: expected binary data");
  const buf = u8.slice().buffer; // aligned copy
  const n = new DataView(buf).getUint32(0, true);
  const h = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  let off = 4 + n;
  const total = h.n.lh + h.n.rh;
  const codes = new Uint16Array(buf, off, total);
  off += total * 2;
  const roi = new Uint8Array(buf, off, total);
  return { h, codes, roi };
}

// per view: rotation of each hemisphere about z (deg), direction from target to camera, camera up
const VIEWS = {
  lateral: { rot: { lh: 90, rh: -90 }, dir: [0, -1, 0], up: [0, 0, 1] },
  medial: { rot: { lh: -90, rh: 90 }, dir: [0, -1, 0], up: [0, 0, 1] },
  ventral: { rot: { lh: 0, rh: 0 }, dir: [0, 0, -1], up: [0, 1, 0] },
  dorsal: { rot: { lh: 0, rh: 0 }, dir: [0, 0, 1], up: [0, 1, 0] },
  posterior: { rot: { lh: 0, rh: 0 }, dir: [0, -1, 0], up: [0, 0, 1] },
  anterior: { rot: { lh: 0, rh: 0 }, dir: [0, 1, 0], up: [0, 0, 1] },
  flat: { rot: { lh: 0, rh: 0 }, dir: [0, 0, 1], up: [0, 1, 0] },
};

class Viewer {
  constructor(root) {
    this.root = root;
    this.el = document.createElement("div");
    this.el.className = "vs-viewer";
    this.el.style.cssText = "position:relative;width:100%;background:#ffffff;overflow:hidden;" +
      "border:1px solid #e6e6e6;border-radius:6px;font-family:sans-serif;user-select:none";
    this.stage = document.createElement("div");
    this.stage.style.cssText = "position:relative;width:100%;height:480px";
    this.labels = document.createElement("div");
    this.labels.style.cssText = "position:absolute;inset:0;pointer-events:none;overflow:hidden";
    this.bar = document.createElement("div");
    this.bar.className = "vs-colourbar";
    this.bar.style.cssText = "font-size:12px;color:#333;padding:4px 10px 8px 10px;border-top:1px solid #eee";
    this.status = document.createElement("div");
    this.status.className = "vs-status";
    this.status.style.cssText = "position:absolute;right:10px;top:8px;font-size:12px;color:#555;" +
      "background:rgba(255,255,255,.85);padding:2px 6px;border-radius:4px;pointer-events:none";
    this.status.textContent = "Loading surface…";
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.renderer.setClearColor(0xffffff, 1);
    this.canvas = this.renderer.domElement;
    this.canvas.style.cssText = "display:block;width:100%;height:100%;cursor:crosshair";
    this.tags = document.createElement("div");
    this.tags.style.cssText = "position:absolute;inset:0;pointer-events:none";
    this.stage.append(this.canvas, this.labels, this.tags, this.status);
    this.el.append(this.stage, this.bar);
    root.appendChild(this.el);

    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(25, 1, 1, 5000);
    this.scene.add(new THREE.AmbientLight(0xffffff, 0.55));
    this.light = new THREE.DirectionalLight(0xffffff, 0.75);
    this.camera.add(this.light);
    this.light.position.set(0.3, 0.5, 1);
    this.scene.add(this.camera);
    this.groups = {};
    this.meshes = {};
    for (const h of HEMIS) {
      this.groups[h] = new THREE.Group();
      this.scene.add(this.groups[h]);
    }
    this.marker = new THREE.Mesh(new THREE.SphereGeometry(1, 16, 12),
      new THREE.MeshBasicMaterial({ color: 0xffd400 }));
    this.markerRing = new THREE.Mesh(new THREE.SphereGeometry(1.5, 16, 12),
      new THREE.MeshBasicMaterial({ color: 0x000000, transparent: true, opacity: 0.35 }));
    this.marker.visible = this.markerRing.visible = false;
    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.enableDamping = false;
    this.controls.addEventListener("change", () => this.render());
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.stage);
    this.raycaster = new THREE.Raycaster();
    this.canvas.addEventListener("pointerdown", (e) => { this.down = [e.clientX, e.clientY]; });
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.seq = 0;
    this.state = {};
    G.viewers.push(this);
  }

  resize() {
    const w = this.stage.clientWidth, h = this.stage.clientHeight;
    if (!w || !h) return;
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.render();
  }

  async update(msg, setTrigger) {
    const seq = ++this.seq;
    const { h } = msg;
    this.setTrigger = setTrigger;
    this.stage.style.height = `${h.height || 480}px`;
    const t0 = performance.now();
    let topo, pos;
    try {
      [topo, pos] = await Promise.all([fetchMesh(h.mesh.topo), fetchMesh(h.mesh.positions)]);
    } catch (err) {
      this.status.textContent = `Could not load the surface: ${err.message}`;
      this.status.style.color = "#b00020";
      return;
    }
    if (seq !== this.seq) return; // a newer message arrived while loading
    const geomKey = `${h.mesh.topo}|${h.mesh.positions}`;
    if (this.state.geomKey !== geomKey) {
      this.buildGeometry(topo, pos, h.surface);
      this.state.geomKey = geomKey;
      this.state.layoutKey = null;
    }
    this.msg = msg;
    const w = this.stage.clientWidth, ht = this.stage.clientHeight;
    if (w !== this.state.w || ht !== this.state.h) {
      this.state.w = w;
      this.state.h = ht;
      this.resize();
    }
    this.colour();
    const layoutKey = `${geomKey}|${h.view}|${h.hemi}|${h.layout_seq || 0}`;
    if (this.state.layoutKey !== layoutKey) {
      this.layout(h.surface === "flat" ? "flat" : h.view, h.hemi);
      this.state.layoutKey = layoutKey;
    }
    this.placeMarker(h.selected);
    const labelsKey = JSON.stringify(h.labels || []);
    if (labelsKey !== this.state.labelsKey) {
      this.buildLabels(h.labels || []);
      this.state.labelsKey = labelsKey;
    }
    this.drawColourbar(h.overlay);
    this.status.textContent = h.status || "";
    this.status.style.display = h.status ? "block" : "none";
    this.render();
    const t = performance.now();
    G.paints.push({ overlay_id: h.overlay_id, t, ms: t - t0, vertices: h.n.lh + h.n.rh });
    this.el.dataset.overlayId = h.overlay_id || "";
    this.el.dataset.painted = String(G.paints.length);
  }

  buildGeometry(topo, pos, surface) {
    for (const h of HEMIS) {
      if (this.meshes[h]) {
        this.groups[h].remove(this.meshes[h]);
        this.meshes[h].geometry.dispose();
      }
      const q = pos.arrays[`${h}.xyz`];
      const lo = pos.header.lo[h], step = pos.header.step[h];
      const n = q.length / 3;
      const xyz = new Float32Array(q.length);
      for (let i = 0; i < n; i++) {
        xyz[3 * i] = q[3 * i] * step[0] + lo[0];
        xyz[3 * i + 1] = q[3 * i + 1] * step[1] + lo[1];
        xyz[3 * i + 2] = q[3 * i + 2] * step[2] + lo[2];
      }
      const facesName = surface === "flat" && topo.arrays[`${h}.flat_faces`] ? `${h}.flat_faces` : `${h}.faces`;
      topo.decoded ||= {};
      topo.decoded[facesName] ||= decodeFaces(topo.arrays[facesName]);
      const geom = new THREE.BufferGeometry();
      geom.setAttribute("position", new THREE.BufferAttribute(xyz, 3));
      geom.setIndex(new THREE.BufferAttribute(topo.decoded[facesName], 1));
      geom.computeVertexNormals();
      geom.computeBoundingSphere();
      const rgb = new Uint8Array(n * 3);
      geom.setAttribute("color", new THREE.BufferAttribute(rgb, 3, true));
      const mat = surface === "flat"
        ? new THREE.MeshBasicMaterial({ vertexColors: true, side: THREE.DoubleSide })
        : new THREE.MeshLambertMaterial({ vertexColors: true });
      const mesh = new THREE.Mesh(geom, mat);
      mesh.userData.hemi = h;
      this.meshes[h] = mesh;
      this.groups[h].add(mesh);
    }
    this.topo = topo;
    this.surface = surface;
    const r = this.meshes.lh.geometry.boundingSphere.radius;
    const s = r / 30;
    this.marker.scale.setScalar(s);
    this.markerRing.scale.setScalar(s);
    this.boundary = null;
  }

  roiBoundary(roi) {
    // a vertex is on an outline when it has an ROI and a neighbour (in a face) has another one
    const out = {};
    let off = 0;
    for (const h of HEMIS) {
      const n = this.msg.h.n[h];
      const r = roi.subarray(off, off + n);
      const f = this.topo.decoded?.[`${h}.faces`] || (this.topo.decoded[`${h}.faces`] = decodeFaces(this.topo.arrays[`${h}.faces`]));
      const b = new Uint8Array(n);
      for (let i = 0; i < f.length; i += 3) {
        const a = r[f[i]], c = r[f[i + 1]], d = r[f[i + 2]];
        if (a !== c || a !== d) {
          if (a && (a !== c || a !== d)) b[f[i]] = 1;
          if (c && (c !== a || c !== d)) b[f[i + 1]] = 1;
          if (d && (d !== a || d !== c)) b[f[i + 2]] = 1;
        }
      }
      out[h] = b;
      off += n;
    }
    return out;
  }

  colour() {
    const { h, codes, roi } = this.msg;
    const ov = h.overlay;
    const lut = ov.lut; // flat [r,g,b]*k
    const k = lut.length / 3;
    const span = ov.hi - ov.lo;
    const vmin = ov.vmin, vmax = ov.vmax;
    const thr = ov.threshold;
    const roiKey = h.roi_id;
    if (h.outlines && (!this.boundary || this.boundaryKey !== roiKey)) {
      this.boundary = this.roiBoundary(roi);
      this.boundaryKey = roiKey;
    }
    let off = 0;
    for (const hemi of HEMIS) {
      const mesh = this.meshes[hemi];
      const n = h.n[hemi];
      const rgb = mesh.geometry.getAttribute("color").array;
      const sulc = this.topo.arrays[`${hemi}.sulc`];
      const bnd = h.outlines && this.boundary ? this.boundary[hemi] : null;
      for (let i = 0; i < n; i++) {
        let r, g, b;
        const c = codes[off + i];
        let shown = false;
        if (c !== NO_VALUE) {
          const v = ov.lo + (c / 65534) * span;
          if (ov.categorical) {
            const j = Math.round(v) - 1;
            if (j >= 0 && j < k) { r = lut[3 * j]; g = lut[3 * j + 1]; b = lut[3 * j + 2]; shown = true; }
          } else if (thr === null || thr === undefined || (ov.symmetric ? Math.abs(v) >= thr : v >= thr)) {
            let t = (v - vmin) / (vmax - vmin);
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            const j = Math.min(k - 1, Math.floor(t * k));
            r = lut[3 * j]; g = lut[3 * j + 1]; b = lut[3 * j + 2]; shown = true;
          }
        }
        if (!shown) {
          const s = sulc[i];
          const grey = 190 - (s * 70) / 255;
          r = g = b = grey;
        }
        if (bnd && bnd[i]) { r = 20; g = 20; b = 20; }
        rgb[3 * i] = r; rgb[3 * i + 1] = g; rgb[3 * i + 2] = b;
      }
      mesh.geometry.getAttribute("color").needsUpdate = true;
      off += n;
    }
  }

  layout(view, hemi) {
    const v = VIEWS[view] || VIEWS.lateral;
    this.tags.replaceChildren();
    const shown = hemi === "both" ? HEMIS : [hemi];
    const boxes = {};
    for (const h of HEMIS) {
      const g = this.groups[h];
      g.visible = shown.includes(h);
      g.position.set(0, 0, 0);
      g.rotation.set(0, 0, v.rot[h] * DEG);
      g.updateMatrixWorld(true);
      boxes[h] = new THREE.Box3().setFromObject(this.meshes[h]);
    }
    const gap = 0.08 * (boxes.lh.max.y - boxes.lh.min.y);
    if (shown.length === 2) {
      // separate the hemispheres along x, each on its own side (seen from below, the left one is on the right)
      this.groups.lh.position.x = -gap / 2 - boxes.lh.max.x;
      this.groups.rh.position.x = gap / 2 - boxes.rh.min.x;
    } else {
      const b = boxes[shown[0]];
      this.groups[shown[0]].position.x = -(b.min.x + b.max.x) / 2;
    }
    const box = new THREE.Box3();
    for (const h of shown) {
      this.groups[h].updateMatrixWorld(true);
      box.union(new THREE.Box3().setFromObject(this.meshes[h]));
    }
    const centre = box.getCenter(new THREE.Vector3());
    const size = box.getSize(new THREE.Vector3());
    const dir = new THREE.Vector3(...v.dir);
    const up = new THREE.Vector3(...v.up);
    const right = new THREE.Vector3().crossVectors(dir.clone().negate(), up);
    const halfW = Math.abs(size.dot(right)) / 2 || size.x / 2;
    const halfH = Math.abs(size.dot(up)) / 2 || size.z / 2;
    const aspect = Math.max(this.camera.aspect, 0.2);
    const tanV = Math.tan((this.camera.fov / 2) * DEG);
    const depth = Math.abs(size.dot(dir)) / 2;
    const dist = depth + 1.08 * Math.max(halfH / tanV, halfW / (tanV * aspect));
    this.camera.up.copy(up);
    this.camera.position.copy(centre).addScaledVector(dir, dist);
    this.camera.near = dist / 50;
    this.camera.far = dist * 10;
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(centre);
    this.controls.update();
    this.fitted = { view, hemi };
    this.tagItems = shown.map((h) => {
      const b = new THREE.Box3().setFromObject(this.meshes[h]);
      const d = document.createElement("div");
      d.textContent = h === "lh" ? "left" : "right";
      d.style.cssText = "position:absolute;top:6px;transform:translateX(-50%);font-size:12px;color:#777";
      this.tags.appendChild(d);
      return { el: d, centre: b.getCenter(new THREE.Vector3()) };
    });
  }

  vertexWorld(hemi, vertex) {
    const mesh = this.meshes[hemi];
    const p = mesh.geometry.getAttribute("position");
    return mesh.localToWorld(new THREE.Vector3(p.getX(vertex), p.getY(vertex), p.getZ(vertex)));
  }

  vertexNormalWorld(hemi, vertex) {
    const mesh = this.meshes[hemi];
    const nrm = mesh.geometry.getAttribute("normal");
    const nm = new THREE.Matrix3().getNormalMatrix(mesh.matrixWorld);
    return new THREE.Vector3(nrm.getX(vertex), nrm.getY(vertex), nrm.getZ(vertex)).applyMatrix3(nm).normalize();
  }

  placeMarker(sel) {
    if (!sel || !this.meshes[sel.hemi] || sel.vertex >= this.msg.h.n[sel.hemi]) {
      this.marker.visible = this.markerRing.visible = false;
      return;
    }
    const g = this.groups[sel.hemi];
    const mesh = this.meshes[sel.hemi];
    const p = mesh.geometry.getAttribute("position");
    for (const m of [this.marker, this.markerRing]) {
      g.add(m);
      m.position.set(p.getX(sel.vertex), p.getY(sel.vertex), p.getZ(sel.vertex));
      m.visible = g.visible;
    }
  }

  buildLabels(labels) {
    this.labels.replaceChildren();
    this.labelItems = labels.map((l) => {
      const d = document.createElement("div");
      d.textContent = l.name;
      d.style.cssText = "position:absolute;transform:translate(-50%,-50%);font-size:11px;font-weight:600;" +
        `color:#111;background:rgba(255,255,255,.75);padding:0 3px;border-radius:3px;border-left:3px solid ${l.colour}`;
      this.labels.appendChild(d);
      return { ...l, el: d };
    });
  }

  project(hemi, vertex, rect) {
    const w = this.vertexWorld(hemi, vertex);
    const normal = this.vertexNormalWorld(hemi, vertex);
    const toCam = this.camera.position.clone().sub(w).normalize();
    const ndc = w.clone().project(this.camera);
    rect ||= this.canvas.getBoundingClientRect();
    const x = rect.left + ((ndc.x + 1) / 2) * rect.width;
    const y = rect.top + ((1 - ndc.y) / 2) * rect.height;
    const inside = Math.abs(ndc.x) < 1 && Math.abs(ndc.y) < 1;
    const facing = this.surface === "flat" || normal.dot(toCam) > 0.25;
    return { x, y, visible: this.groups[hemi].visible && inside && facing };
  }

  updateLabels() {
    const rect = this.canvas.getBoundingClientRect();
    for (const t of this.tagItems || []) {
      const p = t.centre.clone().project(this.camera);
      t.el.style.left = `${((p.x + 1) / 2) * rect.width}px`;
    }
    if (!this.labelItems) return;
    const placed = [];
    for (const l of this.labelItems) {
      let show = false;
      if (this.meshes[l.hemi] && this.groups[l.hemi].visible) {
        const p = this.project(l.hemi, l.vertex, rect);
        const x = p.x - rect.left, y = p.y - rect.top;
        const w = 7 * l.name.length + 10;
        // skip a label that would overlap one already placed (the list comes sorted by importance)
        show = p.visible && !placed.some((q) => Math.abs(q.x - x) < (q.w + w) / 2 && Math.abs(q.y - y) < 16);
        if (show) {
          placed.push({ x, y, w });
          l.el.style.left = `${x}px`;
          l.el.style.top = `${y}px`;
        }
      }
      l.el.style.display = show ? "block" : "none";
    }
  }

  drawColourbar(ov) {
    this.bar.replaceChildren();
    const title = document.createElement("div");
    title.textContent = ov.label + (ov.units ? ` (${ov.units})` : "");
    title.style.cssText = "font-weight:600;margin-bottom:2px";
    this.bar.appendChild(title);
    const lut = ov.lut;
    if (ov.categorical) {
      const wrap = document.createElement("div");
      wrap.style.cssText = "display:flex;flex-wrap:wrap;gap:2px 8px";
      (ov.names || []).forEach((name, j) => {
        const s = document.createElement("span");
        s.innerHTML = `<span style="display:inline-block;width:10px;height:10px;margin-right:3px;` +
          `background:rgb(${lut[3 * j]},${lut[3 * j + 1]},${lut[3 * j + 2]})"></span>`;
        s.appendChild(document.createTextNode(name));
        wrap.appendChild(s);
      });
      this.bar.appendChild(wrap);
      return;
    }
    const c = document.createElement("canvas");
    c.width = 256; c.height = 1;
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(256, 1);
    const k = lut.length / 3;
    for (let i = 0; i < 256; i++) {
      const j = Math.min(k - 1, Math.floor((i / 256) * k));
      img.data.set([lut[3 * j], lut[3 * j + 1], lut[3 * j + 2], 255], 4 * i);
    }
    ctx.putImageData(img, 0, 0);
    c.style.cssText = "width:220px;height:12px;display:block;border:1px solid #999";
    const ticks = document.createElement("div");
    ticks.style.cssText = "display:flex;justify-content:space-between;width:222px";
    const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(1) : x.toFixed(2));
    for (const x of [ov.vmin, (ov.vmin + ov.vmax) / 2, ov.vmax]) {
      const s = document.createElement("span");
      s.textContent = fmt(x);
      ticks.appendChild(s);
    }
    this.bar.append(c, ticks);
    if (ov.threshold !== null && ov.threshold !== undefined) {
      const t = document.createElement("div");
      t.textContent = `shown where ${ov.symmetric ? "|value|" : "value"} ≥ ${fmt(ov.threshold)}`;
      t.style.color = "#666";
      this.bar.appendChild(t);
    }
  }

  render() {
    if (!this.meshes.lh) return;
    this.renderer.render(this.scene, this.camera);
    this.updateLabels();
  }

  onPointerUp(e) {
    if (!this.down || !this.setTrigger) return;
    const moved = Math.hypot(e.clientX - this.down[0], e.clientY - this.down[1]);
    this.down = null;
    if (moved > 4) return; // a drag rotates; only a click picks
    const hit = this.pick(e.clientX, e.clientY);
    if (hit) this.setTrigger("pick", hit);
  }

  pick(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    const ndc = new THREE.Vector2(((clientX - rect.left) / rect.width) * 2 - 1,
      -((clientY - rect.top) / rect.height) * 2 + 1);
    this.raycaster.setFromCamera(ndc, this.camera);
    const targets = HEMIS.filter((h) => this.groups[h].visible).map((h) => this.meshes[h]);
    const hits = this.raycaster.intersectObjects(targets, false);
    if (!hits.length) return null;
    const { object, face, point } = hits[0];
    const local = object.worldToLocal(point.clone());
    const p = object.geometry.getAttribute("position");
    let best = face.a, bestD = Infinity;
    for (const v of [face.a, face.b, face.c]) {
      const d = local.distanceToSquared(new THREE.Vector3(p.getX(v), p.getY(v), p.getZ(v)));
      if (d < bestD) { bestD = d; best = v; }
    }
    return { hemi: object.userData.hemi, vertex: best };
  }

  vertexColour(hemi, vertex) {
    const a = this.meshes[hemi].geometry.getAttribute("color").array;
    return [a[3 * vertex], a[3 * vertex + 1], a[3 * vertex + 2]];
  }

  dispose() {
    this.resizer.disconnect();
    this.controls.dispose();
    for (const h of HEMIS) this.meshes[h]?.geometry.dispose();
    this.renderer.dispose();
    this.el.remove();
    G.viewers = G.viewers.filter((v) => v !== this);
  }
}

const byRoot = new WeakMap();

export default function render({ data, parentElement, setTriggerValue }) {
  let viewer = byRoot.get(parentElement);
  if (!viewer) {
    viewer = new Viewer(parentElement);
    byRoot.set(parentElement, viewer);
  }
  let msg;
  try {
    msg = parseMessage(data);
  } catch (err) {
    viewer.status.textContent = String(err.message || err);
    return;
  }
  viewer.update(msg, setTriggerValue);
  return () => {
    // Streamlit calls this before every re-render too: keep the viewer unless it left the page
    setTimeout(() => {
      const host = parentElement.host || parentElement;
      if (!host.isConnected) {
        viewer.dispose();
        byRoot.delete(parentElement);
      }
    }, 2000);
  };
}
