//! PeerJS signaling as `peer@1.0.2` (the broker) and `peerjs@1.5.5` (the client) speak it, per
//! `docs/protocol.md` §2 and §5.
//!
//! - [`Frame`]: the `{type, src, dst, payload}` envelope, parsed in any key order, unknown types and
//!   extra members kept, emitted in the client→server (`{type,payload,dst}`) or the
//!   server→client (`{type,src,dst,payload}`) shape. The payload stays raw JSON, so a relay can
//!   pass it on without decoding it.
//! - [`payload`]: typed OFFER / ANSWER / CANDIDATE / ERROR payloads.
//! - [`binarypack`], [`msgpack`] and [`dataconn`]: the DataConnection serializations (BinaryPack
//!   with 16,300-byte chunking, JSON with its size cap, raw, and the MsgPack byte stream).

pub mod binarypack;
pub mod dataconn;
mod frame;
pub mod msgpack;
pub mod payload;

pub use frame::{Frame, FrameError, FrameRef, MessageType};
