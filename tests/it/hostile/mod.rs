//! Hostile input (issue 11): raw HTTP/1.1 bytes, raw HTTP/2 frames, smuggling and
//! ambiguity cases and memory under floods, each checked against a raw-bytes
//! recording upstream: nothing unverified reaches the app, and what does is
//! byte-identical to what was signed.

mod frames;
mod http1;
mod http2;
mod memory;
mod raw;
mod smuggling;
