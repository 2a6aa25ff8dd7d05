// SynthAV's voice: a source-filter speech synthesiser (a glottal pulse train through a cascade of formant
// resonators, Klatt-style) driven by a syllable plan, plus the recording's background.
//
// Arousal is the voice's strong dimension: it sets pitch, pitch-accent range, loudness, syllable rate,
// pause length and spectral tilt together, so any of the usual prosodic features tracks it. Valence is
// weak: only the slope of a phrase's pitch, a small formant shift and a little tilt follow it. Strengths
// live in kCues (synthav_internal.h). Nuisances: speakers differ (pitch over more than an octave, vocal
// tract, level, rate, breathiness), background noise at a per-recording SNR, mains hum, low-SNR stretches,
// pauses and dropouts of digital silence, and in conversations the other person's voice.
#include <algorithm>
#include <cmath>

#include "data/synthav_internal.h"

namespace minidl::data::synthav {
namespace {

struct Vowel {
  double f[4];        // formants of an adult male voice, Hz
  float open, round;  // for the face: jaw opening, lip rounding
};
// /a/ /e/ /i/ /o/ /u/ (Peterson & Barney-like values).
constexpr Vowel kVowels[] = {
    {{730, 1090, 2440, 3400}, 1.0f, 0.0f},  {{530, 1840, 2480, 3500}, 0.65f, 0.0f},
    {{270, 2290, 3010, 3600}, 0.35f, 0.0f}, {{570, 840, 2410, 3400}, 0.7f, 0.8f},
    {{300, 870, 2240, 3400}, 0.4f, 1.0f},
};
constexpr int kNumVowels = 5;
constexpr double kBandwidth[4] = {70, 100, 140, 200};  // Hz

constexpr double kAttack = 0.015, kRelease = 0.03;  // voiced nucleus ramps, s
constexpr double kSpeechRms = 0.064;                // typical voiced RMS at level 0 dB, arousal 0
// Scales the synthesiser's raw output to kSpeechRms; measured once for the pulse train + cascade below.
constexpr double kVoiceNorm = 0.00476;

double raised(double x) { return 0.5 - 0.5 * std::cos(M_PI * std::clamp(x, 0.0, 1.0)); }

// Roughly normal, sd 1, from one 32-bit value (sum of three bytes): cheap enough for every sample.
float cheap_normal(uint32_t u) {
  const int s = static_cast<int>(u & 0xFF) + static_cast<int>((u >> 8) & 0xFF) + static_cast<int>((u >> 16) & 0xFF);
  return (static_cast<float>(s) - 382.5f) * (1.0f / 128.0f);
}

// Voiced-nucleus and consonant envelopes of syllable s at time t.
void envelopes(const Syllable& s, double t, double& voiced, double& noise) {
  voiced = noise = 0;
  if (t >= s.start && t < s.end + kRelease)
    voiced = raised((t - s.start) / kAttack) * (t < s.end ? 1.0 : 1.0 - raised((t - s.end) / kRelease));
  if (s.start > s.onset && t >= s.onset && t < s.start + 0.01) {
    const double len = s.start - s.onset;
    noise = std::sin(M_PI * std::clamp((t - s.onset) / (len + 0.01), 0.0, 1.0));
  }
}

// Two-pole resonator y = A x + B y1 + C y2 with unity gain at 0 Hz (Klatt 1980).
struct Resonator {
  double a = 1, b = 0, c = 0, y1 = 0, y2 = 0;
  void tune(double f, double bw, int rate) {
    const double r = std::exp(-M_PI * bw / rate);
    b = 2 * r * std::cos(2 * M_PI * f / rate);
    c = -r * r;
    a = 1 - b - c;
  }
  double step(double x) {
    const double y = a * x + b * y1 + c * y2;
    y2 = y1;
    y1 = y;
    return y;
  }
};

// RMS of the glottal pulse after the two low-pass poles (coefficient alpha) and the lip-radiation
// difference: the level a brighter voice would gain for nothing; the synthesiser divides it out so
// loudness follows kCues.loudness_db_a alone.
double pulse_rms(double alpha) {
  double g1 = 0, g2 = 0, prev = 0, energy = 0;
  for (int k = 0; k < 2000; ++k) {
    const double src = k == 0 ? 1 : 0;
    g1 = alpha * g1 + (1 - alpha) * src;
    g2 = alpha * g2 + (1 - alpha) * g1;
    energy += (g2 - prev) * (g2 - prev);
    prev = g2;
  }
  return std::sqrt(energy);
}

// Adds one speaker's voice to out[0, n).
void render_voice(const Speaker& sp, int rate, std::vector<float>& out, Rng& rng) {
  const VoiceIdentity& voice = *sp.voice;
  const std::vector<Syllable>& syl = sp.plan->syllables;
  const int64_t n = static_cast<int64_t>(out.size());
  const int block = std::max(1, rate / 1000);  // control parameters change every millisecond
  const double nyquist_guard = 0.45 * rate;

  double phase = 0, step = voice.f0 / rate, jitter = 1, pending = 0;
  double g1 = 0, g2 = 0, uprev = 0;
  double formant[4];
  for (int k = 0; k < 4; ++k) formant[k] = kVowels[0].f[k] * voice.formant_scale;
  const double smooth = 1 - std::exp(-static_cast<double>(block) / rate / 0.02);
  Resonator res[4], fric;
  bool use[4] = {true, true, true, true};
  fric.tune(std::min(3800.0, 0.33 * rate), 0.12 * rate, rate);
  size_t i = 0;
  double alpha = voice.tilt, gain = 0;
  double pulse_norm[101];  // 1 / pulse_rms on a grid of alpha in [0, 1)
  for (int k = 0; k <= 100; ++k) pulse_norm[k] = 1 / pulse_rms(std::min(0.99, k / 100.0));

  for (int64_t n0 = 0; n0 < n; n0 += block) {
    const double t = static_cast<double>(n0) / rate;
    while (i < syl.size() && syl[i].end + kRelease <= t) ++i;
    const double a = sp.traj->arousal_at(t), v = sp.traj->valence_at(t);
    const bool inside = i < syl.size() && t >= syl[i].onset;
    if (inside) {
      const Syllable& s = syl[i];
      const double pos = std::clamp((t - s.phrase_start) / std::max(1e-3, s.phrase_end - s.phrase_start), 0.0, 1.0);
      const double bump = std::sin(M_PI * std::clamp((t - s.onset) / std::max(1e-3, s.end - s.onset), 0.0, 1.0));
      const double octaves = kCues.pitch_a * a + s.accent * bump + kCues.intonation_v * v * (pos - 0.5) - 0.08 * pos;
      step = voice.f0 * std::exp2(octaves) / rate;
      const double shift = voice.formant_scale * (1 + kCues.formant_v * v);
      for (int k = 0; k < 4; ++k) formant[k] += (kVowels[s.vowel].f[k] * shift - formant[k]) * smooth;
    }
    for (int k = 0; k < 4; ++k) {
      use[k] = formant[k] + kBandwidth[k] < nyquist_guard;
      if (use[k]) res[k].tune(formant[k], kBandwidth[k] * (k == 0 ? 1.0 : voice.formant_scale), rate);
    }
    alpha = std::clamp(voice.tilt - kCues.tilt_a * a - kCues.tilt_v * v, 0.3, 0.97);
    // More pulses per second carry more energy: divide by sqrt(f0) so pitch does not set the level.
    const double at = alpha * 100, frac_a = at - std::floor(at);
    const int ia = static_cast<int>(at);
    const double norm = pulse_norm[ia] + (pulse_norm[std::min(100, ia + 1)] - pulse_norm[ia]) * frac_a;
    gain = kVoiceNorm * norm / std::sqrt(step * rate / 120) *
           std::pow(10.0, (voice.level_db + kCues.loudness_db_a * a) / 20);

    const int64_t n1 = std::min(n, n0 + block);
    for (int64_t k = n0; k < n1; ++k) {
      double env_v = 0, env_n = 0;
      if (inside) envelopes(syl[i], static_cast<double>(k) / rate, env_v, env_n);
      const uint32_t bits = rng.bits();
      // Pulse train with the impulse split between the two samples around its true position.
      double src = pending;
      pending = 0;
      phase += step * jitter;
      if (phase >= 1) {
        phase -= 1;
        const double frac = std::min(1.0, phase / (step * jitter));  // how far past the pulse this sample is
        src += 1 - frac;
        pending = frac;
        jitter = 1 + 0.02 * ((bits >> 24) / 255.0 - 0.5);
      }
      g1 = alpha * g1 + (1 - alpha) * src;
      g2 = alpha * g2 + (1 - alpha) * g1;
      const double noise = cheap_normal(bits);
      const double u = env_v * (g2 + voice.breathiness * 0.02 * noise);
      double x = u - uprev;  // lip radiation: a first difference
      uprev = u;
      for (int r = 0; r < 4; ++r)
        if (use[r]) x = res[r].step(x);
      const double f = fric.step(env_n * 0.004 * noise);
      out[k] += static_cast<float>(gain * (x * 40 + f));
    }
  }
}

}  // namespace

VoiceIdentity make_voice_identity(uint64_t seed, int identity) {
  Rng rng(seed, stream_id(Tag::kVoiceIdentity, static_cast<uint64_t>(identity)));
  VoiceIdentity v;
  v.f0 = rng.log_uniform(90, 240);
  // Higher voices come with shorter vocal tracts, with some spread.
  v.formant_scale = 1 + 0.17 * std::log(v.f0 / 90) / std::log(240.0 / 90) + rng.uniform(-0.04, 0.04);
  v.level_db = rng.uniform(-3, 3);
  v.syllable_rate = rng.uniform(3.8, 5.0);
  v.tilt = rng.uniform(0.72, 0.86);
  v.breathiness = rng.uniform(0.02, 0.12);
  return v;
}

std::vector<std::vector<Interval>> plan_turns(int speakers, double seconds, Rng& rng) {
  std::vector<std::vector<Interval>> turns(static_cast<size_t>(speakers));
  if (speakers == 1) {
    const double start = rng.uniform(0.1, 0.4);
    if (seconds - 0.1 > start) turns[0].push_back({start, seconds - 0.1});
    return turns;
  }
  double t = rng.uniform(0, 0.4);
  int who = rng.below(speakers);
  while (t < seconds - 0.5) {
    const double len = rng.uniform(2, 6);
    turns[static_cast<size_t>(who)].push_back({t, std::min(t + len, seconds - 0.1)});
    t += len + rng.uniform(0.1, 0.7);
    who = (who + 1) % speakers;
  }
  return turns;
}

SpeechPlan plan_speech(const VoiceIdentity& voice, const Trajectory& traj, const std::vector<Interval>& turns,
                       Rng& rng) {
  SpeechPlan plan;
  for (const Interval& turn : turns) {
    double t = turn.start;
    while (t < turn.end - 0.25) {
      const double phrase_end = std::min(t + rng.uniform(0.9, 3.2), turn.end);
      const size_t first = plan.syllables.size();
      double tau = t;
      while (tau < phrase_end - 0.08) {
        const double a = traj.arousal_at(tau);
        const double rate = voice.syllable_rate * std::exp2(kCues.rate_a * a);
        const double dur = std::min(rng.uniform(0.75, 1.25) / rate, phrase_end - tau);
        Syllable s;
        s.onset = tau;
        s.start = rng.chance(0.65) ? tau + dur * rng.uniform(0.12, 0.28) : tau;
        s.end = tau + dur * rng.uniform(0.78, 0.92);
        s.vowel = rng.below(kNumVowels);
        s.accent = static_cast<float>(rng.normal() * (kCues.accent_base + kCues.accent_a * (a + 1) / 2));
        s.gain = static_cast<float>(rng.uniform(0.75, 1.15));
        s.phrase_start = t;
        if (s.end - s.start > 0.03) plan.syllables.push_back(s);
        tau += dur;
      }
      if (plan.syllables.size() > first) {
        const double end = plan.syllables.back().end;
        for (size_t k = first; k < plan.syllables.size(); ++k) plan.syllables[k].phrase_end = end;
      }
      const double a = traj.arousal_at(phrase_end);
      double pause = rng.uniform(0.2, 1.0) * (1 - kCues.pause_a * a);
      if (rng.chance(0.12)) pause += rng.uniform(1.0, 2.5);  // now and then a longer silence
      t = phrase_end + pause;
    }
  }
  return plan;
}

MouthShape mouth_at(const SpeechPlan& plan, double t) {
  const auto& syl = plan.syllables;
  // The last syllable starting at or before t.
  auto it = std::upper_bound(syl.begin(), syl.end(), t, [](double x, const Syllable& s) { return x < s.onset; });
  if (it == syl.begin()) return {};
  const Syllable& s = *(it - 1);
  const double close = 0.06;  // the jaw closes a little after the voice stops
  if (t >= s.end + close) return {};
  double open;
  if (t < s.start) {
    open = 0.15 * raised((t - s.onset) / std::max(1e-3, s.start - s.onset));
  } else {
    open = raised((t - s.start) / 0.04) * (t < s.end ? 1.0 : 1.0 - raised((t - s.end) / close));
    open = std::max(open, t < s.end ? 0.15 : 0.0);
  }
  const Vowel& vw = kVowels[s.vowel];
  return {static_cast<float>(open * vw.open * s.gain), static_cast<float>(vw.round * std::min(1.0, open * 2))};
}

std::vector<float> synthesize_audio(const std::vector<Speaker>& speakers, double seconds, int sample_rate,
                                    uint64_t seed, uint64_t recording, AudioEvents* events) {
  const int64_t n = std::llround(seconds * sample_rate);
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(n, 0)), 0.0f);
  Rng rng(seed, stream_id(Tag::kAudio, recording));

  // What happens besides speech, drawn first and in a fixed order.
  AudioEvents ev;
  ev.snr_db = rng.uniform(10, 28);
  ev.hum = rng.chance(0.35);
  const double hum_hz = rng.chance(0.5) ? 50 : 60;
  const double colour = rng.uniform(0.0, 0.9);  // 0 white .. 0.9 dull rumble
  ev.low_snr = random_stretches(rng, seconds, 20, 1.0, 3.5);
  std::vector<double> boost_db;
  for (size_t k = 0; k < ev.low_snr.size(); ++k) boost_db.push_back(ev.snr_db - rng.uniform(-4, 4));  // SNR -4..4 dB
  ev.silent = random_stretches(rng, seconds, 25, 0.3, 1.2);

  for (size_t s = 0; s < speakers.size(); ++s) {
    Rng voice_rng(seed, stream_id(Tag::kAudio, recording, 1 + s));
    render_voice(speakers[s], sample_rate, out, voice_rng);
  }

  // Background: coloured noise (variance kept at 1 whatever the colour) and maybe hum, at the SNR.
  const double level = kSpeechRms * std::pow(10.0, -ev.snr_db / 20);
  const double keep_var = std::sqrt((1 + colour) / (1 - colour));
  const double ramp = 0.08;
  double y = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double t = static_cast<double>(k) / sample_rate;
    y = colour * y + (1 - colour) * cheap_normal(rng.bits());
    double bg = y * keep_var;
    if (ev.hum) {
      const double w = 2 * M_PI * hum_hz * t;
      bg += 0.6 * (std::sin(w) + 0.5 * std::sin(2 * w) + 0.3 * std::sin(3 * w));
    }
    double g = 1;
    for (size_t j = 0; j < ev.low_snr.size(); ++j) {
      const Interval& iv = ev.low_snr[j];
      const double in = std::min(raised((t - iv.start) / ramp), 1 - raised((t - iv.end + ramp) / ramp));
      if (in > 0) g = std::max(g, 1 + in * (std::pow(10.0, boost_db[j] / 20) - 1));
    }
    double x = out[static_cast<size_t>(k)] + level * g * bg;
    for (const Interval& iv : ev.silent) {
      const double fade = 0.005;
      const double in = std::min(raised((t - iv.start) / fade), 1 - raised((t - iv.end + fade) / fade));
      x *= 1 - in;
    }
    out[static_cast<size_t>(k)] = static_cast<float>(x);
  }
  if (events) *events = ev;
  return out;
}

}  // namespace minidl::data::synthav
