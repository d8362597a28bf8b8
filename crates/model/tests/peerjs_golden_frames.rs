//! Golden PeerJS frames from the captured traffic in `docs/protocol.md` §6,
//! kept under `fixtures/peerjs/`.

use peerstorm_model::peerjs::payload::{AnswerPayload, CandidatePayload, OfferPayload};
use peerstorm_model::peerjs::{Frame, FrameError, MessageType};

fn read(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../fixtures/peerjs/{name}",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn relay_rebuilds_frames_exactly_like_the_reference() {
    let mut n = 0;
    for line in read("relay.jsonl").lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let (from, sent, received) =
            (case["from"].as_str().unwrap(), case["sent"].as_str().unwrap(), case["received"].as_str().unwrap());
        let mut f = Frame::parse(sent).unwrap();
        assert_eq!(f.to_server_json(), sent, "{}", case["note"]);
        f.src = Some(from.to_string());
        assert_eq!(f.to_client_json(), received, "{}", case["note"]);
        let got = Frame::parse(received).unwrap();
        match got.kind.clone().unwrap() {
            MessageType::Offer if got.payload.as_ref().unwrap().get().contains("\"sdp\"") => {
                got.payload_as::<OfferPayload>().unwrap();
            }
            MessageType::Answer => {
                got.payload_as::<AnswerPayload>().unwrap();
            }
            MessageType::Candidate => {
                got.payload_as::<CandidatePayload>().unwrap();
            }
            _ => {}
        }
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn every_captured_frame_round_trips_in_its_direction() {
    for line in read("server-to-client.jsonl").lines() {
        assert_eq!(Frame::parse(line).unwrap().to_client_json(), line);
    }
    for line in read("client-to-server.jsonl").lines() {
        assert_eq!(Frame::parse(line).unwrap().to_server_json(), line);
    }
}

#[test]
fn malformed_frames_are_errors_not_panics() {
    for line in read("malformed.txt").lines() {
        let e = Frame::parse(line).unwrap_err();
        assert!(matches!(e, FrameError::Json { .. } | FrameError::Shape { .. }), "{line}: {e:?}");
    }
}
