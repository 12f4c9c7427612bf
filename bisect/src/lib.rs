//! Two-phase dispute engine (graph nodes, then VM steps) over a generic `Phase`, and the submitter and challenger bots with their persisted state (filled in by the dispute-game issue).
