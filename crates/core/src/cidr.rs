//! CIDR arithmetic (filled in by the planner work).
