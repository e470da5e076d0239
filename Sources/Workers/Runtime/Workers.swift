import Projections

/// Workers: the role services (core, whatsapp, telegram, web) that react to the event stream. They arrive with
/// the role issues; this module holds the shared process plumbing.
public enum Workers {}
