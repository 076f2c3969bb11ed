--
-- PostgreSQL database dump
--

\restrict FJbYOZdTlA1UI5wiD7psIoKLtKVlm3K2HYcwunGBgmsW9wed0JQBV8aNk1FXng9

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: plain; Type: DATABASE; Schema: -; Owner: csghub
--

CREATE DATABASE plain WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';


ALTER DATABASE plain OWNER TO csghub;

\unrestrict FJbYOZdTlA1UI5wiD7psIoKLtKVlm3K2HYcwunGBgmsW9wed0JQBV8aNk1FXng9
\connect plain
\restrict FJbYOZdTlA1UI5wiD7psIoKLtKVlm3K2HYcwunGBgmsW9wed0JQBV8aNk1FXng9

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: DATABASE plain; Type: COMMENT; Schema: -; Owner: csghub
--

COMMENT ON DATABASE plain IS 'hi';


--
-- Name: plain; Type: DATABASE PROPERTIES; Schema: -; Owner: csghub
--

ALTER DATABASE plain CONNECTION LIMIT = 50;
ALTER DATABASE plain SET work_mem TO '8MB';
ALTER ROLE app IN DATABASE plain SET work_mem TO '9MB';


\unrestrict FJbYOZdTlA1UI5wiD7psIoKLtKVlm3K2HYcwunGBgmsW9wed0JQBV8aNk1FXng9
\connect plain
\restrict FJbYOZdTlA1UI5wiD7psIoKLtKVlm3K2HYcwunGBgmsW9wed0JQBV8aNk1FXng9

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: t; Type: TABLE; Schema: public; Owner: csghub
--

CREATE TABLE public.t (
    a text
);


ALTER TABLE public.t OWNER TO csghub;

--
-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: csghub
--

COPY public.t (a) FROM stdin;
x
\.


--
-- Name: DATABASE plain; Type: ACL; Schema: -; Owner: csghub
--

GRANT CONNECT ON DATABASE plain TO app;


--
-- PostgreSQL database dump complete
--

\unrestrict FJbYOZdTlA1UI5wiD7psIoKLtKVlm3K2HYcwunGBgmsW9wed0JQBV8aNk1FXng9

