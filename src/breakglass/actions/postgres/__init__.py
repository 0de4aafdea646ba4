"""The PostgreSQL provider: the only package besides the sandbox that imports psycopg."""
