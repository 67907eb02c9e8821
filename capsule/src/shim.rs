//! The API that generated proxy libraries ("shims") call when they load.
