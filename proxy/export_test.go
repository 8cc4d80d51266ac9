package proxy

// PoolIdle returns the number of pooled idle upstream connections.
func (s *Server) PoolIdle() int { return s.pool.idleCount() }

// SetFastHead turns the fast response-head path on or off.
func (s *Server) SetFastHead(on bool) { s.noFastHead = !on }
