//! Loading a closure into a private link-map namespace with dlmopen, and walking its link map.
