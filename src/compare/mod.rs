//! compare (placeholder until it lands)
