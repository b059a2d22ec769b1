//! replay (placeholder until it lands)
