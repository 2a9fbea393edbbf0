//! Pure-Rust WAV handling for the voice pipeline: the length of a recording from its header,
//! 16 kHz mono PCM for local Whisper, and splitting a recording too large for a transcription
//! API into parts.
//!
//! Twilio's `.wav` recordings are 8 kHz mono 16-bit PCM; other WAVs (any rate, channels, 8–32
//! bit integer or 32-bit float PCM) are read through [`hound`]. Compressed WAVs (µ-law, ADPCM)
//! and MP3 are not decoded here: they are stored and sent to an API as they are, and only the
//! split path (never needed below 25 MiB, i.e. ~27 minutes of Twilio WAV or ~109 minutes of
//! 32 kbps MP3) refuses them with a clear error.
//!
//! **Splitting** ([`split_wav`]): the audio is mixed to mono and brought to at most 16 kHz
//! (Whisper's own rate; an 8 kHz call stays 8 kHz), then cut into `n` parts of about equal length,
//! each below the byte limit. Each cut is moved to the quietest 50 ms in the last tenth of its
//! part (a pause between words), so no word is cut in half when the caller paused anywhere near.
//! Only one part is held in memory at a time; each is written to its own temporary WAV file.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use tempfile::NamedTempFile;

/// The highest sample rate parts are written at (Whisper's rate).
pub const MAX_PART_RATE: u32 = 16_000;

/// Bytes of the canonical WAV header hound writes.
const WAV_HEADER_BYTES: u64 = 44;

/// Why audio could not be read or split.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Not a WAV hound can decode (MP3, µ-law, ADPCM, garbage).
    #[error("not a PCM WAV file: {0}")]
    Unsupported(String),
    /// Reading or writing a temporary file failed.
    #[error("audio i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<hound::Error> for AudioError {
    fn from(e: hound::Error) -> Self {
        match e {
            hound::Error::IoError(io) => AudioError::Io(io),
            other => AudioError::Unsupported(other.to_string()),
        }
    }
}

/// What a WAV header says: where the samples start and how many bytes make a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavHeader {
    /// Bytes per second of audio (`fmt ` byte rate).
    pub byte_rate: u32,
    /// Offset of the first sample byte.
    pub data_offset: u64,
}

/// Reads a RIFF/WAVE header from the first bytes of a file (the `fmt ` and `data` chunk
/// headers must be within them; Twilio's are in the first 44 bytes). `None` when it is not a
/// WAV or the header does not fit.
pub fn parse_wav_header(head: &[u8]) -> Option<WavHeader> {
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12usize;
    let mut byte_rate = None;
    while pos + 8 <= head.len() {
        let id = &head[pos..pos + 4];
        let size = u32::from_le_bytes(head[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            let rate = head.get(body + 8..body + 12)?;
            byte_rate = Some(u32::from_le_bytes(rate.try_into().ok()?));
        } else if id == b"data" {
            return Some(WavHeader {
                byte_rate: byte_rate.filter(|r| *r > 0)?,
                data_offset: body as u64,
            });
        }
        // Chunks are padded to an even size.
        pos = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// The length in seconds of a WAV of `total_bytes` whose header is `header`.
pub fn wav_seconds(header: WavHeader, total_bytes: u64) -> f64 {
    total_bytes.saturating_sub(header.data_offset) as f64 / f64::from(header.byte_rate)
}

/// The length in seconds of the WAV file at `path`, `None` when it is not a WAV.
pub fn wav_file_seconds(path: &Path) -> Result<Option<f64>, AudioError> {
    let mut head = Vec::with_capacity(4096);
    File::open(path)?.take(4096).read_to_end(&mut head)?;
    let total = std::fs::metadata(path)?.len();
    Ok(parse_wav_header(&head).map(|h| wav_seconds(h, total)))
}

/// Streams the samples of a WAV as mono `f32` in [-1, 1] at the file's own rate.
struct MonoSamples {
    reader: hound::WavReader<BufReader<File>>,
    channels: usize,
    scale: f32,
    float: bool,
}

impl MonoSamples {
    fn open(path: &Path) -> Result<(Self, u32, u64), AudioError> {
        let reader = hound::WavReader::open(path)?;
        let spec = reader.spec();
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(AudioError::Unsupported(
                "no channels or no sample rate".into(),
            ));
        }
        let float = spec.sample_format == hound::SampleFormat::Float;
        if float && spec.bits_per_sample != 32 {
            return Err(AudioError::Unsupported(format!(
                "{}-bit float samples",
                spec.bits_per_sample
            )));
        }
        let scale = if float {
            1.0
        } else {
            1.0 / (1u64 << (spec.bits_per_sample.clamp(8, 32) - 1)) as f32
        };
        let frames = u64::from(reader.duration());
        Ok((
            MonoSamples {
                reader,
                channels: usize::from(spec.channels),
                scale,
                float,
            },
            spec.sample_rate,
            frames,
        ))
    }

    /// Calls `f` with each mono sample, in order.
    fn for_each(
        mut self,
        mut f: impl FnMut(f32) -> Result<(), AudioError>,
    ) -> Result<(), AudioError> {
        let mut acc = 0.0f32;
        let mut n = 0usize;
        let channels = self.channels;
        let mut push = |v: f32, f: &mut dyn FnMut(f32) -> Result<(), AudioError>| {
            acc += v;
            n += 1;
            if n == channels {
                let mono = acc / channels as f32;
                acc = 0.0;
                n = 0;
                f(mono)?;
            }
            Ok::<(), AudioError>(())
        };
        if self.float {
            for s in self.reader.samples::<f32>() {
                push(s?, &mut f)?;
            }
        } else {
            let scale = self.scale;
            for s in self.reader.samples::<i32>() {
                push(s? as f32 * scale, &mut f)?;
            }
        }
        Ok(())
    }
}

/// A streaming resampler from `from` Hz to `to` Hz: box-averaging when going down (a cheap
/// low-pass against aliasing), linear interpolation when going up.
struct Resampler {
    step: f64,
    pos: f64,
    prev: f32,
    sum: f64,
    count: u32,
    down: bool,
    started: bool,
}

impl Resampler {
    fn new(from: u32, to: u32) -> Self {
        Resampler {
            step: f64::from(from) / f64::from(to),
            pos: 0.0,
            prev: 0.0,
            sum: 0.0,
            count: 0,
            down: from >= to,
            started: false,
        }
    }

    /// Feeds one input sample; calls `out` for each output sample it completes.
    fn push(
        &mut self,
        x: f32,
        out: &mut impl FnMut(f32) -> Result<(), AudioError>,
    ) -> Result<(), AudioError> {
        if self.down {
            // Input sample i covers [i, i+1); output k covers [k*step, (k+1)*step).
            self.sum += f64::from(x);
            self.count += 1;
            self.pos += 1.0;
            if self.pos >= self.step {
                self.pos -= self.step;
                let v = (self.sum / f64::from(self.count)) as f32;
                self.sum = 0.0;
                self.count = 0;
                out(v)?;
            }
            return Ok(());
        }
        if !self.started {
            self.prev = x;
            self.started = true;
            self.pos = 0.0;
            out(x)?;
            self.pos += self.step;
            return Ok(());
        }
        // Output samples at input positions in (i-1, i] interpolate between prev and x.
        while self.pos <= 1.0 {
            let v = self.prev + (x - self.prev) * self.pos as f32;
            out(v)?;
            self.pos += self.step;
        }
        self.pos -= 1.0;
        self.prev = x;
        Ok(())
    }
}

/// The whole WAV at `path` as 16 kHz mono `f32` (what Whisper wants).
pub fn read_pcm_16k_mono(path: &Path) -> Result<Vec<f32>, AudioError> {
    let (samples, rate, frames) = MonoSamples::open(path)?;
    let expected = (frames as f64 * 16_000.0 / f64::from(rate)) as usize + 16;
    let mut out = Vec::with_capacity(expected.min(16_000 * 60 * 60 * 4));
    if rate == 16_000 {
        samples.for_each(|s| {
            out.push(s);
            Ok(())
        })?;
        return Ok(out);
    }
    let mut rs = Resampler::new(rate, 16_000);
    let mut emit = |v: f32| {
        out.push(v);
        Ok(())
    };
    samples.for_each(|s| rs.push(s, &mut emit))?;
    Ok(out)
}

/// Length of the window in which a cut looks for silence.
const QUIET_WINDOW_MS: u32 = 50;

/// The index at which to cut `part` (len ≥ 2): the middle of the quietest window of
/// [`QUIET_WINDOW_MS`] in its last tenth, or the end when the part is too short to search.
fn quiet_cut(part: &[i16], rate: u32) -> usize {
    let window = (rate * QUIET_WINDOW_MS / 1000).max(1) as usize;
    let search_from = part.len() - part.len() / 10;
    if part.len() < window * 4 || part.len() - search_from < window {
        return part.len();
    }
    let energy = |w: &[i16]| -> i64 { w.iter().map(|s| i64::from(*s) * i64::from(*s)).sum() };
    let mut best = (i64::MAX, part.len());
    let mut start = search_from;
    // Step half a window: fine enough for pauses of 100 ms and more, cheap on 25 MiB parts.
    while start + window <= part.len() {
        let e = energy(&part[start..start + window]);
        // `<=`: of equally quiet windows the latest, so parts stay close to their target.
        if e <= best.0 {
            best = (e, start + window / 2);
        }
        start += window / 2;
    }
    best.1
}

/// Splits the WAV at `path` into mono 16-bit PCM WAV parts of at most `max_part_bytes` each (see
/// the module doc), written to temporary files in `dir`. Returns them in order.
pub fn split_wav(
    path: &Path,
    max_part_bytes: u64,
    dir: &Path,
) -> Result<Vec<NamedTempFile>, AudioError> {
    let (samples, rate, frames) = MonoSamples::open(path)?;
    let out_rate = rate.min(MAX_PART_RATE);
    let max_samples = max_part_bytes.saturating_sub(WAV_HEADER_BYTES) / 2;
    if max_samples < u64::from(out_rate) {
        return Err(AudioError::Unsupported(format!(
            "a part limit of {max_part_bytes} bytes holds less than a second of audio"
        )));
    }
    let total = (frames as f64 * f64::from(out_rate) / f64::from(rate)).ceil() as u64;
    let parts = total.div_ceil(max_samples).max(1);
    let target = usize::try_from(total.div_ceil(parts).min(max_samples)).unwrap_or(usize::MAX);

    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: out_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let write_part = |samples: &[i16]| -> Result<NamedTempFile, AudioError> {
        let file = tempfile::Builder::new()
            .prefix("moked-part-")
            .suffix(".wav")
            .tempfile_in(dir)?;
        let mut w = hound::WavWriter::new(std::io::BufWriter::new(file.reopen()?), spec)?;
        let mut i16w = w.get_i16_writer(u32::try_from(samples.len()).unwrap_or(u32::MAX));
        for s in samples {
            i16w.write_sample(*s);
        }
        i16w.flush()?;
        w.finalize()?;
        Ok(file)
    };

    let mut out = Vec::new();
    let mut buf: Vec<i16> = Vec::with_capacity(target.min(1 << 24));
    let mut written: u64 = 0;
    let mut sink = |v: f32| -> Result<(), AudioError> {
        buf.push((v.clamp(-1.0, 1.0) * 32767.0) as i16);
        // Cuts land a little before their target; once the rest fits in one part (with a
        // margin for the estimate of `total`), it all goes into the last part.
        let rest_fits = total.saturating_sub(written) + u64::from(out_rate) <= max_samples;
        if (buf.len() >= target && !rest_fits) || buf.len() as u64 >= max_samples {
            let cut = quiet_cut(&buf, out_rate);
            out.push(write_part(&buf[..cut])?);
            written += cut as u64;
            buf.drain(..cut);
        }
        Ok(())
    };
    if out_rate == rate {
        samples.for_each(&mut sink)?;
    } else {
        let mut rs = Resampler::new(rate, out_rate);
        samples.for_each(|s| rs.push(s, &mut sink))?;
    }
    if !buf.is_empty() || out.is_empty() {
        out.push(write_part(&buf)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
    }

    /// `secs` seconds of a 440 Hz tone with 300 ms of silence every second.
    fn speechy(rate: u32, secs: u32) -> Vec<i16> {
        (0..rate * secs)
            .map(|i| {
                let t = i % rate;
                if t >= rate * 7 / 10 {
                    0
                } else {
                    ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16
                }
            })
            .collect()
    }

    #[test]
    fn a_twilio_header_gives_the_length_and_garbage_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        write_wav(&p, 8000, 1, &vec![0; 8000 * 3]);
        let secs = wav_file_seconds(&p).unwrap().unwrap();
        assert!((secs - 3.0).abs() < 1e-6, "{secs}");
        assert_eq!(parse_wav_header(b"ID3\x04 not a wav at all"), None);
        assert_eq!(parse_wav_header(b"RIFF\0\0\0\0WAVE"), None);
    }

    #[test]
    fn splitting_keeps_every_part_under_the_limit_and_cuts_in_pauses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("long.wav");
        write_wav(&p, 8000, 1, &speechy(8000, 60));
        // 60 s at 8 kHz 16-bit = 960 kB; limit 300 kB → 4 parts.
        let parts = split_wav(&p, 300_000, dir.path()).unwrap();
        assert_eq!(parts.len(), 4);
        let mut total = 0u64;
        for part in &parts {
            let len = std::fs::metadata(part.path()).unwrap().len();
            assert!(len <= 300_000, "{len}");
            let r = hound::WavReader::open(part.path()).unwrap();
            assert_eq!((r.spec().sample_rate, r.spec().channels), (8000, 1));
            total += u64::from(r.duration());
            // Every cut but the last falls in a pause: the part ends in silence.
            let samples: Vec<i16> = r.into_samples::<i16>().map(Result::unwrap).collect();
            let tail = &samples[samples.len() - 8..];
            if part.path() != parts[parts.len() - 1].path() {
                assert!(tail.iter().all(|s| s.abs() < 50), "{tail:?}");
            }
        }
        assert_eq!(total, 8000 * 60);
    }

    #[test]
    fn stereo_44k_is_mixed_down_to_16k_mono_and_whisper_pcm_is_16k() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cd.wav");
        let mono = speechy(44_100, 2);
        let stereo: Vec<i16> = mono.iter().flat_map(|s| [*s, *s]).collect();
        write_wav(&p, 44_100, 2, &stereo);
        let parts = split_wav(&p, 10_000_000, dir.path()).unwrap();
        assert_eq!(parts.len(), 1);
        let r = hound::WavReader::open(parts[0].path()).unwrap();
        assert_eq!((r.spec().sample_rate, r.spec().channels), (16_000, 1));
        assert!(
            (i64::from(r.duration()) - 32_000).abs() <= 2,
            "{}",
            r.duration()
        );

        let p8 = dir.path().join("call.wav");
        write_wav(&p8, 8000, 1, &speechy(8000, 2));
        let pcm = read_pcm_16k_mono(&p8).unwrap();
        assert!((pcm.len() as i64 - 32_000).abs() <= 2, "{}", pcm.len());
        assert!(pcm.iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn mp3_bytes_are_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mp3");
        std::fs::write(&p, b"ID3\x04\0\0\0\0\0\0").unwrap();
        let e = split_wav(&p, 1_000_000, dir.path())
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("not a PCM WAV"));
    }
}
