"""Personal data: access-request exports, erasure on request, retention by age."""
