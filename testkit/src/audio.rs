//! Recordings as Twilio serves them, for fakes of its media endpoint: 8 kHz 16-bit mono WAV.

use std::io::Cursor;

/// `secs` seconds of 8 kHz 16-bit mono WAV (Twilio's format): a tone with a pause every second.
pub fn wav(secs: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Vec::new();
    {
        let mut w = hound::WavWriter::new(Cursor::new(&mut bytes), spec).expect("wav");
        let mut i16w = w.get_i16_writer(8000 * secs);
        for i in 0..8000 * secs {
            let in_pause = i % 8000 >= 5600;
            // A 400 Hz square-ish wave: cheap to generate for half an hour of audio.
            let v: i16 = if in_pause {
                0
            } else if (i / 10) % 2 == 0 {
                6000
            } else {
                -6000
            };
            i16w.write_sample(v);
        }
        i16w.flush().expect("flush");
        w.finalize().expect("finalize");
    }
    bytes
}
