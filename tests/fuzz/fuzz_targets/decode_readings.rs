//! Any bytes as a Kafka message: the decoder returns readings or an
//! error, never panics, and every reading it returns is finite with a
//! sensor id and a metric name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(readings) = yujing_ingest::decode_readings(data) {
        for r in readings {
            assert!(r.value.is_finite(), "non-finite value accepted");
            assert!(!r.sensor_id.trim().is_empty(), "empty sensor id accepted");
            assert!(!r.metric.trim().is_empty(), "empty metric accepted");
        }
    }
});
