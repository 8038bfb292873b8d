#![no_main]
//! `ringtail::fuzzing::record_batch` under libFuzzer, with the allocation bound (src/fuzzing.rs).

#[global_allocator]
static ALLOCATOR: ringtail::fuzzing::CountingAllocator = ringtail::fuzzing::CountingAllocator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringtail::fuzzing::run_target("record_batch", data);
});
