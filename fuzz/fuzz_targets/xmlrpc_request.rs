//! The hub's XML-RPC request parser: every byte of a POST body reaches it before any
//! authentication. Responses are parsed by the same reader (the builder reads the hub's), so both
//! entry points run, and whatever parses must survive a write/parse round trip unchanged.
#![no_main]

use containerbuild::xmlrpc::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `parse_request` is what the hub runs on a client's body (with the request limits);
    // `parse_call` reads stored task requests (no limits) and must accept whatever it accepts.
    if let Ok(call) = wire::parse_request(data) {
        wire::parse_call(data).expect("a request the hub accepts is a valid stored call");
        let again = wire::write_call(&call.name, &call.params);
        let back = wire::parse_call(again.as_bytes()).expect("written call parses");
        assert_eq!(back.name, call.name);
        assert_eq!(back.params.len(), call.params.len());
    }
    let _ = wire::parse_response(data);
});
