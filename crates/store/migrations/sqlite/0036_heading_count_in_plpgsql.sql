-- PostgreSQL's heading instances' count changes through a PL/pgSQL function from here on
-- (../postgres/0036_heading_count_in_plpgsql.sql); SQLite's triggers change it in statements of their
-- own, so nothing changes here.
SELECT 1;
