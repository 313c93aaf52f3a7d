"""The campaign engine: enrolment, execution of due traces, events, test mode, runners."""
