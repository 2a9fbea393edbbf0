//! The prelude of every Redis script of the queue (the backend's in [`super::redis`], the
//! batched enqueue's in [`super::redis_enqueue`]): the argument checks of `lua/args.lua`.

use ::redis::Script;

/// The argument checks every script starts with (see `lua/args.lua`).
const ARGS_LUA: &str = include_str!("lua/args.lua");

/// A script with the argument checks of `lua/args.lua` in front: each script checks all of its
/// arguments before its first write, because Redis keeps the writes a failing script made.
pub(super) fn script(body: &str) -> Script {
    Script::new(&format!("{ARGS_LUA}\n{body}"))
}
