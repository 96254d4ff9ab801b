//! Request and response bodies: their [`Encoding`], the async [`pump`] that forwards a
//! body to a blocking worker, and the [`io`] adapters that worker reads and writes with.

pub mod encoding;
pub mod io;
pub mod pump;

pub use encoding::Encoding;
pub use io::{Chunks, FRAME, FrameEncoder, Limited, Tee, channel_reader, refuse_trailing};
pub use pump::{IN_FLIGHT, drain, forward};
