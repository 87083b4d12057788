package record

// Event is the records of one audit event (one serial), in the order the
// kernel sent them. The router builds events; rules and delivery read them.
type Event struct {
	Records []Record
	// Partial is set when the event was closed by a timeout rather than by
	// its EOE record or by being a single-record event.
	Partial bool
}

// Find returns the first record of type typ, or nil.
func (e *Event) Find(typ uint16) *Record {
	for i := range e.Records {
		if e.Records[i].Type == typ {
			return &e.Records[i]
		}
	}
	return nil
}

// Field returns the first value of the named field in any record of the
// event, searching records in order.
func (e *Event) Field(name string) ([]byte, bool) {
	for i := range e.Records {
		if v, ok := e.Records[i].Field(name); ok {
			return v, true
		}
	}
	return nil, false
}
