"""Local fakes of outside services: a Slack Web API server and an SMTP sink (loopback only)."""
