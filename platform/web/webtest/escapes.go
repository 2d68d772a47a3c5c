package webtest

// NameEscape is one way a client may write a one-segment name (a
// service, an instance id, an election, a scaler) in a path.
type NameEscape struct {
	Case, Path string
	// Status is what a write to the name answers: 0 when it is accepted
	// (200 or 201 by the route), else 400 (refused once decoded) or 404
	// (no route has that many segments).
	Status int
	// Name is the name the path reaches when it is accepted.
	Name string
}

// NameEscapes is web.PathParam's rule for a name, the same in every
// service: the path is percent-decoded exactly once, then checked.
var NameEscapes = []NameEscape{
	{"plain", "web-1", 0, "web-1"},
	{"escaped hyphen", "web%2D1", 0, "web-1"},
	{"escaped letter", "%77eb-1", 0, "web-1"},
	{"lower-case escape", "web%2d1", 0, "web-1"},
	{"escaped slash", "web%2F1", 400, ""},
	{"raw slash", "web/1", 404, ""},
	{"double-escaped slash", "web%252F1", 400, ""},
	{"escaped percent", "web%251", 400, ""},
	{"unicode", "caf%C3%A9", 400, ""},
	{"invalid UTF-8", "web%FF", 400, ""},
	{"escaped NUL", "web%001", 400, ""},
	{"..", "..", 400, ""},
	{"escaped ..", "%2E%2E", 400, ""},
	{"escaped .", "%2E", 400, ""},
}
