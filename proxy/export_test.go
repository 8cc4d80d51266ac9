package proxy

// PoolIdle returns the number of pooled idle upstream connections.
func (s *Server) PoolIdle() int { return s.pool.idleCount() }
