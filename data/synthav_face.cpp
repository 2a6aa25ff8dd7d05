// SynthAV's face: a cartoon face per identity, rendered with anti-aliased implicit shapes (no textures,
// no mesh) so that every pixel is a short, fixed sequence of float operations: cheap enough for tens of
// thousands of frames a minute, and the same bytes on every thread.
//
// Valence is the face's strong dimension: the mouth's curvature and the brows (raised for positive
// valence, inner ends lowered into a frown for negative) follow it. Arousal leaves a weaker trace: eye
// opening, blink rate, head motion, brow height and how wide the mouth opens while speaking. Strengths
// live in kCues (synthav_internal.h). Nuisances: identities differ in shape, colours, placement, hair and
// resting expression; per video framing, lighting drift and sensor noise; occluders (a bar, a hand, a
// blur) over stretches of frames.
#include <algorithm>
#include <cmath>

#include "data/synthav_internal.h"

namespace minidl::data::synthav {
namespace {

Rgb rgb(double r, double g, double b) { return {static_cast<float>(r), static_cast<float>(g), static_cast<float>(b)}; }
Rgb mix(const Rgb& x, const Rgb& y, float t) {
  return {x.r + (y.r - x.r) * t, x.g + (y.g - x.g) * t, x.b + (y.b - x.b) * t};
}
Rgb scaled(const Rgb& x, float s) { return {x.r * s, x.g * s, x.b * s}; }
// Three draws in a fixed order (the order of a function's arguments is up to the compiler, and the
// plan must not depend on the compiler).
Rgb random_rgb(Rng& rng, double lo, double hi) {
  Rgb c;
  c.r = static_cast<float>(rng.uniform(lo, hi));
  c.g = static_cast<float>(rng.uniform(lo, hi));
  c.b = static_cast<float>(rng.uniform(lo, hi));
  return c;
}
float clamp01(float x) { return std::min(1.0f, std::max(0.0f, x)); }
// Coverage of a pixel by a shape whose signed distance (negative inside) is d pixels.
float cover(float d_px) { return clamp01(0.5f - d_px); }

// A slowly wandering value with unit variance (Ornstein-Uhlenbeck, time constant tau).
struct Wander {
  double x = 0, tau = 1;
  double step(double dt, Rng& rng) {
    const double rho = std::exp(-dt / tau);
    x = rho * x + std::sqrt(1 - rho * rho) * rng.normal();
    return x;
  }
};

// In-place box blur of a size x size x 3 float image, radius r, clamped at the edges.
void box_blur(std::vector<float>& img, int size, int r, std::vector<float>& tmp) {
  tmp.resize(img.size());
  const float inv = 1.0f / static_cast<float>(2 * r + 1);
  for (int pass = 0; pass < 2; ++pass) {
    const std::vector<float>& src = pass == 0 ? img : tmp;
    std::vector<float>& dst = pass == 0 ? tmp : img;
    for (int line = 0; line < size; ++line)
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int k) {
          k = std::clamp(k, 0, size - 1);
          return pass == 0 ? src[(line * size + k) * 3 + c] : src[(k * size + line) * 3 + c];
        };
        float sum = 0;
        for (int k = -r; k <= r; ++k) sum += at(k);
        for (int k = 0; k < size; ++k) {
          (pass == 0 ? dst[(line * size + k) * 3 + c] : dst[(k * size + line) * 3 + c]) = sum * inv;
          sum += at(k + r + 1) - at(k - r);
        }
      }
  }
}

}  // namespace

FaceIdentity make_face_identity(uint64_t seed, int identity) {
  Rng rng(seed, stream_id(Tag::kFaceIdentity, static_cast<uint64_t>(identity)));
  FaceIdentity f;
  auto u = [&](double lo, double hi) { return static_cast<float>(rng.uniform(lo, hi)); };
  f.width = u(0.70, 0.84);
  f.chin = u(0.15, 0.35);
  f.eye_x = u(0.29, 0.37);
  f.eye_y = u(-0.18, -0.06);
  f.eye_w = u(0.11, 0.15);
  f.eye_h = u(0.055, 0.08);
  f.brow_y = f.eye_y - u(0.14, 0.2);
  f.brow_thick = u(0.025, 0.045);
  f.nose_y = u(0.18, 0.26);
  f.mouth_y = u(0.45, 0.56);
  f.mouth_w = u(0.22, 0.31);
  f.lip = u(0.025, 0.045);
  f.hairline = u(-0.62, -0.45);
  const double style = rng.uniform();
  f.hair_style = style < 0.5 ? 0 : style < 0.85 ? 1 : 2;
  f.eye_open = u(0.8, 1.2);
  f.smile = static_cast<float>(std::clamp(rng.normal() * kCues.resting_smile_sd, -0.25, 0.25));
  f.cx = u(0.45, 0.55);
  f.cy = u(0.47, 0.55);
  f.scale = u(0.33, 0.39);

  const double tone = rng.uniform();
  f.skin = mix(rgb(0.36, 0.22, 0.15), rgb(0.95, 0.78, 0.68), static_cast<float>(tone));
  f.skin = {f.skin.r * u(0.96, 1.04), f.skin.g * u(0.96, 1.04), f.skin.b * u(0.96, 1.04)};
  const Rgb hairs[] = {rgb(0.08, 0.06, 0.05), rgb(0.3, 0.18, 0.1), rgb(0.75, 0.6, 0.35), rgb(0.6, 0.6, 0.6),
                       rgb(0.55, 0.25, 0.1)};
  const Rgb& hair = hairs[rng.below(5)];
  f.hair = scaled(hair, u(0.85, 1.15));
  f.lips = mix(f.skin, rgb(0.6, 0.2, 0.22), u(0.35, 0.55));
  const Rgb irises[] = {rgb(0.25, 0.15, 0.08), rgb(0.25, 0.4, 0.6), rgb(0.3, 0.45, 0.3), rgb(0.1, 0.08, 0.06)};
  f.iris = irises[rng.below(4)];
  f.shirt = random_rgb(rng, 0.1, 0.9);
  const Rgb grey = rgb(0.5, 0.5, 0.5);
  f.bg0 = mix(random_rgb(rng, 0.1, 0.9), grey, 0.4f);
  f.bg1 = mix(random_rgb(rng, 0.1, 0.9), grey, 0.4f);
  f.bg_angle = u(0, 2 * M_PI);
  f.bg_freq = u(0, 3);
  f.bg_pattern = u(0, 0.15);
  f.light_x = u(-0.6, 0.6);
  f.light_y = u(-0.7, 0.1);
  f.ambient = u(0.35, 0.55);
  return f;
}

FaceScene make_face_scene(const FaceIdentity& face, int size, Rng& rng) {
  FaceScene s;
  s.size = size;
  s.dx = static_cast<float>(rng.uniform(-0.03, 0.03) * size);
  s.dy = static_cast<float>(rng.uniform(-0.03, 0.03) * size);
  s.noise = static_cast<float>(rng.uniform(1.5, 5.0));
  s.light_gain = static_cast<float>(rng.uniform(0.85, 1.1));
  s.light_drift = static_cast<float>(rng.uniform(0, 0.08));
  s.light_period = static_cast<float>(rng.uniform(4, 15));
  s.light_phase = static_cast<float>(rng.uniform(0, 2 * M_PI));
  s.tint.r = static_cast<float>(1 + rng.uniform(-0.05, 0.05));
  s.tint.g = 1;
  s.tint.b = static_cast<float>(1 + rng.uniform(-0.05, 0.05));

  // Background (gradient plus soft stripes) and the shoulders, which stay put while the head moves.
  s.background.resize(static_cast<size_t>(size) * size * 3);
  const float ca = std::cos(face.bg_angle), sa = std::sin(face.bg_angle);
  const float face_px = face.scale * size, scx = face.cx * size + s.dx, scy = face.cy * size + s.dy + 1.9f * face_px;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const float u = (x + 0.5f) / size - 0.5f, v = (y + 0.5f) / size - 0.5f;
      const float along = u * ca + v * sa;
      Rgb c = mix(face.bg0, face.bg1, clamp01(0.5f + along));
      c = scaled(c, 1 + face.bg_pattern * std::sin(2 * static_cast<float>(M_PI) * face.bg_freq * (v * ca - u * sa)));
      const float ex = (x + 0.5f - scx) / (1.7f * face_px), ey = (y + 0.5f - scy) / (1.05f * face_px);
      const float e = std::sqrt(ex * ex + ey * ey);
      const float shade = 0.75f + 0.25f * clamp01(1 - ey);
      c = mix(c, scaled(face.shirt, shade), cover((e - 1) * face_px));
      float* p = &s.background[(static_cast<size_t>(y) * size + x) * 3];
      p[0] = c.r;
      p[1] = c.g;
      p[2] = c.b;
    }
  return s;
}

FacePlan plan_face(const FaceIdentity& face, const FaceScene& scene, const Trajectory& traj, const SpeechPlan& speech,
                   const std::vector<double>& times, Rng& rng) {
  FacePlan plan;
  const int64_t n = static_cast<int64_t>(times.size());
  const double fps = n > 1 ? (n - 1) / std::max(1e-6, times.back() - times.front()) : 30.0;

  // Occluders first, so the per-frame draws below always start at the same point of the stream.
  for (const Interval& iv : random_stretches(rng, n > 0 ? times.back() + 1 / fps : 0, 15, 0.5, 3.0)) {
    Occlusion o;
    const int kind = rng.below(3);
    o.kind = kind == 0 ? OcclusionKind::kBar : kind == 1 ? OcclusionKind::kHand : OcclusionKind::kBlur;
    o.first = std::lower_bound(times.begin(), times.end(), iv.start) - times.begin();
    o.last = std::lower_bound(times.begin(), times.end(), iv.end) - times.begin() - 1;
    const int where = rng.below(3);  // over the eyes, over the mouth, anywhere
    o.y = where == 0 ? face.eye_y : where == 1 ? face.mouth_y : static_cast<float>(rng.uniform(-0.3, 0.7));
    o.h = static_cast<float>(rng.uniform(0.12, 0.25));
    o.x = static_cast<float>(rng.uniform(-0.3, 0.3));
    o.angle = static_cast<float>(rng.uniform(-0.5, 0.5));
    o.color = o.kind == OcclusionKind::kHand ? scaled(face.skin, static_cast<float>(rng.uniform(0.9, 1.1)))
                                             : random_rgb(rng, 0.05, 0.95);
    if (o.last >= o.first) plan.occlusions.push_back(o);
  }

  Wander hx{0, 0.6}, hy{0, 0.6}, hr{0, 0.8}, hs{0, 1.5}, hyaw{0, 0.8}, gx{0, 0.7}, gy{0, 0.7}, mc{0, 0.5}, bn{0, 0.5};
  int blink_len = 0, blink_at = 0;
  const float face_px = face.scale * scene.size;
  plan.frames.resize(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const double t = times[static_cast<size_t>(k)];
    const double dt = k > 0 ? t - times[static_cast<size_t>(k) - 1] : 1 / fps;
    const double v = traj.valence_at(t), a = traj.arousal_at(t);
    const double excite = (a + 1) / 2;
    FaceFrame& f = plan.frames[static_cast<size_t>(k)];

    const double move = (kCues.head_move_base + kCues.head_move_a * excite) * scene.size;
    f.cx = static_cast<float>(face.cx * scene.size + scene.dx + move * hx.step(dt, rng));
    f.cy = static_cast<float>(face.cy * scene.size + scene.dy + move * hy.step(dt, rng));
    f.scale = static_cast<float>(face_px * (1 + 0.02 * hs.step(dt, rng)));
    f.roll = static_cast<float>((kCues.head_roll_base + kCues.head_roll_a * excite) * M_PI / 180 * hr.step(dt, rng));
    f.yaw = static_cast<float>(2.0 * move / scene.size * hyaw.step(dt, rng));
    f.gaze_x = static_cast<float>(0.25 * gx.step(dt, rng));
    f.gaze_y = static_cast<float>(0.2 * gy.step(dt, rng));

    const MouthShape m = mouth_at(speech, t);
    f.mouth_open = static_cast<float>(m.open * (1 + kCues.articulation_a * a));
    f.mouth_round = m.round;
    f.mouth_curve = static_cast<float>(
        std::clamp(kCues.mouth_curve_v * v + face.smile + kCues.mouth_jitter_sd * mc.step(dt, rng), -1.3, 1.3));
    f.mouth_width = static_cast<float>(1 + kCues.mouth_widen_v * v);
    f.teeth = static_cast<float>(std::clamp(kCues.teeth_v * v, 0.0, 1.0));
    f.brow_raise = static_cast<float>(kCues.brow_raise_v * v + kCues.brow_raise_a * a + 0.01 * bn.step(dt, rng));
    f.brow_frown = static_cast<float>(kCues.brow_frown_v * -v);

    // Blinks: a Poisson process whose rate follows arousal; a blink lasts about 0.18 s.
    const double start_p = kCues.blink_per_min * std::exp2(a) / 60 * dt;
    const bool start = rng.uniform() < start_p;
    if (blink_len == 0 && start) {
      blink_len = std::max(2, static_cast<int>(std::lround(0.18 / dt)));
      blink_at = 0;
    }
    double closed = 0;
    if (blink_len > 0) {
      closed = std::sin(M_PI * (blink_at + 0.5) / blink_len);
      if (++blink_at == blink_len) blink_len = 0;
    }
    f.eye_open = static_cast<float>(face.eye_open * (1 + kCues.eye_open_a * a) * (1 - closed));
    f.light = static_cast<float>(
        scene.light_gain * (1 + scene.light_drift * std::sin(2 * M_PI * t / scene.light_period + scene.light_phase)));
    for (size_t j = 0; j < plan.occlusions.size(); ++j) {
      const Occlusion& o = plan.occlusions[j];
      if (k >= o.first && k <= o.last) {
        f.occlusion = static_cast<int>(j);
        f.occlusion_t = static_cast<float>((k - o.first + 0.5) / static_cast<double>(o.last - o.first + 1));
        break;
      }
    }
  }
  return plan;
}

void render_face(const FaceIdentity& face, const FaceScene& scene, const FacePlan& plan, int64_t frame, uint64_t seed,
                 uint64_t noise_stream, Image& out) {
  const FaceFrame& f = plan.frames[static_cast<size_t>(frame)];
  const int size = scene.size;
  thread_local std::vector<float> buf, tmp;
  buf.assign(scene.background.begin(), scene.background.end());

  const float cr = std::cos(f.roll), sr = std::sin(f.roll), inv = 1.0f / f.scale, px = f.scale;
  float lx = face.light_x, ly = face.light_y, lz = 1;
  const float ln = 1 / std::sqrt(lx * lx + ly * ly + lz * lz);
  lx *= ln, ly *= ln, lz *= ln;
  const Occlusion* occ = f.occlusion >= 0 ? &plan.occlusions[static_cast<size_t>(f.occlusion)] : nullptr;
  const float occ_alpha = occ ? clamp01(std::min(f.occlusion_t, 1 - f.occlusion_t) / 0.15f) : 0;
  const float oc = occ ? std::cos(occ->angle) : 1, os = occ ? std::sin(occ->angle) : 0;

  const float eye_h = std::max(0.004f, face.eye_h * f.eye_open);
  const float mouth_w = face.mouth_w * f.mouth_width * (1 - 0.3f * f.mouth_round);
  const float gap_max =
      0.17f * f.mouth_open * (1 + 0.3f * f.mouth_round) + static_cast<float>(kCues.smile_open_v) * f.teeth;
  const float lash = 0.012f;
  const Rgb dark_mouth = rgb(0.15, 0.05, 0.05), lid = scaled(face.hair, 0.5f), brow = scaled(face.hair, 0.8f);
  const Rgb sclera = rgb(0.92, 0.9, 0.88), teeth = rgb(0.93, 0.92, 0.86);

  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const float dx = x + 0.5f - f.cx, dy = y + 0.5f - f.cy;
      const float fx = (cr * dx + sr * dy) * inv, fy = (-sr * dx + cr * dy) * inv;
      if (fx * fx + fy * fy > 1.75f * 1.75f) continue;  // nothing but background out there
      float* p = &buf[(static_cast<size_t>(y) * size + x) * 3];
      Rgb c{p[0], p[1], p[2]};

      // Hair behind the head (long style) or a cap (short style).
      if (face.hair_style != 2) {
        const float hw = face.width * (face.hair_style == 1 ? 1.28f : 1.1f);
        const float hh = face.hair_style == 1 ? 1.15f : 1.1f, hc = face.hair_style == 1 ? 0.05f : -0.06f;
        const float ex = fx / hw, ey = (fy - hc) / hh;
        const float bottom = face.hair_style == 1 ? 0.85f : -0.15f;
        float k = cover((std::sqrt(ex * ex + ey * ey) - 1) * hw * px);
        k *= cover((fy - bottom) * px);
        if (k > 0) c = mix(c, scaled(face.hair, 0.55f + 0.35f * clamp01(0.5f - ey)), k);
      }
      // Neck.
      if (fy > 0.5f) {
        const float k = cover((std::fabs(fx) - 0.36f * face.width / 0.78f) * px) * cover((fy - 1.15f) * px);
        if (k > 0) c = mix(c, scaled(face.skin, 0.72f), k);
      }
      // The face oval, narrowing towards the chin, lit from the identity's light direction.
      const float rx = face.width * (1 - face.chin * std::max(0.0f, fy) * std::max(0.0f, fy));
      const float ox = fx / rx, F = ox * ox + fy * fy;
      const float k_face = cover((std::sqrt(F) - 1) * std::min(rx, 1.0f) * px);
      if (k_face > 0) {
        const float nz = std::sqrt(std::max(0.0f, 1 - F));
        const float shade = face.ambient + (1 - face.ambient) * std::max(0.0f, ox * lx + fy * ly + nz * lz);
        Rgb skin = scaled(face.skin, shade);
        const float gxf = fx - f.yaw;  // features turn with the head more than the outline does

        // Eyes: sclera, iris and pupil inside the lids, a lash line along them (a line when closed).
        for (int side = -1; side <= 1; side += 2) {
          const float qx = gxf - side * face.eye_x, qy = fy - face.eye_y;
          if (std::fabs(qx) > face.eye_w * 1.3f || std::fabs(qy) > face.eye_h * 1.6f + lash) continue;
          const float xx = qx / face.eye_w;
          const float half = eye_h * std::sqrt(std::max(0.0f, 1 - xx * xx));
          const float k_in = cover((std::fabs(qy) - half) * px) * cover((std::fabs(xx) - 1) * face.eye_w * px);
          if (k_in > 0) {
            Rgb e = scaled(sclera, shade);
            const float ix = qx - f.gaze_x * face.eye_w * 0.5f, iy = qy - f.gaze_y * face.eye_h * 0.5f;
            const float r = std::sqrt(ix * ix + iy * iy);
            e = mix(e, scaled(face.iris, shade), cover((r - face.eye_h * 0.95f) * px));
            e = mix(e, rgb(0.02, 0.02, 0.02), cover((r - face.eye_h * 0.42f) * px));
            skin = mix(skin, e, k_in);
          }
          const float k_lid = cover((std::fabs(std::fabs(qy) - half) - lash * 0.5f) * px) *
                              cover((std::fabs(xx) - 1.05f) * face.eye_w * px) * (qy < 0 || half < 0.02f ? 1.0f : 0.5f);
          skin = mix(skin, lid, k_lid);
        }
        // Brows: a thick segment from the inner to the outer end (they never stray 0.25 from brow_y).
        for (int side = -1; side <= 1 && std::fabs(fy - face.brow_y) < 0.25f; side += 2) {
          const float ax = side * (face.eye_x - face.eye_w * 0.9f), ay = face.brow_y - f.brow_raise + f.brow_frown;
          const float bx = side * (face.eye_x + face.eye_w * 1.1f), by = face.brow_y - f.brow_raise - 0.01f;
          const float vx = bx - ax, vy = by - ay, wx = gxf - ax, wy = fy - ay;
          const float h = clamp01((wx * vx + wy * vy) / (vx * vx + vy * vy));
          const float ddx = wx - h * vx, ddy = wy - h * vy;
          const float d = std::sqrt(ddx * ddx + ddy * ddy) - face.brow_thick * (1.1f - 0.4f * h);
          if (d < 0.05f) skin = mix(skin, scaled(brow, shade), cover(d * px));
        }
        // Nostrils.
        for (int side = -1; side <= 1; side += 2) {
          const float nx = (gxf - side * 0.06f) / 0.035f, ny = (fy - face.nose_y) / 0.022f;
          const float e = nx * nx + ny * ny;
          if (e < 4) skin = mix(skin, scaled(skin, 0.55f), cover((std::sqrt(e) - 1) * 0.022f * px));
        }
        // Mouth: a centre line that curves up at the corners with c, lips around it, the opening inside.
        const float xx = gxf / mouth_w;
        if (std::fabs(xx) < 1.1f && std::fabs(fy - face.mouth_y) < 0.35f) {
          const float across = std::sqrt(std::max(0.0f, 1 - xx * xx));
          const float m = face.mouth_y - f.mouth_curve * static_cast<float>(kCues.mouth_lift) * (xx * xx - 1.0f / 3);
          const float half_gap = 0.5f * gap_max * across + 0.004f;
          const float lip = face.lip * across * (1 + 0.3f * f.mouth_round) + 0.006f;
          const float dist = std::fabs(fy - m);
          const float edge = cover((std::fabs(xx) - 1) * mouth_w * px);
          skin = mix(skin, scaled(face.lips, shade), cover((dist - half_gap - lip) * px) * edge);
          // The opening: dark, with the upper teeth showing in a smile (above a line a third of the way
          // down the opening).
          const float upper = cover((fy - (m + 0.3f * half_gap)) * px);
          const Rgb inside = mix(dark_mouth, scaled(teeth, shade), f.teeth * upper);
          skin = mix(skin, inside, cover((dist - half_gap) * px) * edge);
        }
        // Hair over the forehead.
        if (face.hair_style != 2) {
          const float line = face.hairline + 0.15f * (fx / face.width) * (fx / face.width);
          skin = mix(skin, scaled(face.hair, 0.8f), cover((fy - line) * px));
        }
        c = mix(c, skin, k_face);
      }
      // Occluders move with the face: a bar across it or a hand over part of it.
      if (occ && occ->kind == OcclusionKind::kBar) {
        const float k = cover((std::fabs(fy - occ->y) - occ->h) * px) * cover((std::fabs(fx) - 1.3f) * px);
        c = mix(c, scaled(occ->color, 0.85f + 0.15f * clamp01(0.5f - (fy - occ->y) / occ->h)), k * occ_alpha);
      } else if (occ && occ->kind == OcclusionKind::kHand) {
        const float hx = fx - occ->x, hy = fy - occ->y;
        const float ax = oc * hx + os * hy, ay = -os * hx + oc * hy;
        const float e = std::sqrt((ax / 0.45f) * (ax / 0.45f) + (ay / 0.3f) * (ay / 0.3f));
        const float k = cover((e - 1) * 0.3f * px);
        if (k > 0) {
          const float finger = 0.85f + 0.15f * std::cos(ay * 2 * static_cast<float>(M_PI) / 0.12f);
          c = mix(c, scaled(occ->color, finger * (0.8f + 0.2f * clamp01(1 - e))), k * occ_alpha);
        }
      }
      p[0] = c.r;
      p[1] = c.g;
      p[2] = c.b;
    }
  if (occ && occ->kind == OcclusionKind::kBlur && occ_alpha > 0)
    box_blur(buf, size, std::max(1, static_cast<int>(std::lround(occ_alpha * size / 14.0f))), tmp);

  // Light, colour cast, sensor noise (luminance plus a little chroma), 8-bit rounding.
  out.width = out.height = size;
  out.rgb.resize(static_cast<size_t>(size) * size * 3);
  const float gain = f.light * 255.0f, sigma = scene.noise;
  const float tint[3] = {scene.tint.r * gain, scene.tint.g * gain, scene.tint.b * gain};
  philox::Block blk{};
  for (int64_t q = 0; q < static_cast<int64_t>(size) * size; ++q) {
    if (q % 4 == 0) blk = Rng::block_at(seed, noise_stream, static_cast<uint64_t>(q / 4));
    const uint32_t u = blk.v[q % 4];
    const int s = static_cast<int>(u & 0xFF) + static_cast<int>((u >> 8) & 0xFF) + static_cast<int>((u >> 16) & 0xFF);
    const float lum = (static_cast<float>(s) - 382.5f) * (sigma / 128.0f);
    const float chroma = (static_cast<float>(u >> 24) - 127.5f) * (sigma * 0.25f / 73.9f);
    const float noise[3] = {lum + chroma, lum, lum - chroma};
    for (int c = 0; c < 3; ++c) {
      const float val = buf[static_cast<size_t>(q) * 3 + c] * tint[c] + noise[c] + 0.5f;
      out.rgb[static_cast<size_t>(q) * 3 + c] = static_cast<uint8_t>(std::clamp(val, 0.0f, 255.0f));
    }
  }
}

}  // namespace minidl::data::synthav
