package qlog

// ParseStreamInfoLast is parseStreamInfoLast, for the external tests that
// feed it real answers of real servers.
var ParseStreamInfoLast = parseStreamInfoLast
