--
-- PostgreSQL database dump
--

\restrict A1iSnp0elmmRtsFbQS05KUkuTFqX33qsvlbzGn4Q0rV6V6v4euP1gigjaKYuIZk

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
-- Name: My-Db; Type: DATABASE; Schema: -; Owner: app
--

CREATE DATABASE "My-Db" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';


ALTER DATABASE "My-Db" OWNER TO app;

\unrestrict A1iSnp0elmmRtsFbQS05KUkuTFqX33qsvlbzGn4Q0rV6V6v4euP1gigjaKYuIZk
\encoding SQL_ASCII
\connect -reuse-previous=on "dbname='My-Db'"
\restrict A1iSnp0elmmRtsFbQS05KUkuTFqX33qsvlbzGn4Q0rV6V6v4euP1gigjaKYuIZk

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
-- PostgreSQL database dump complete
--

\unrestrict A1iSnp0elmmRtsFbQS05KUkuTFqX33qsvlbzGn4Q0rV6V6v4euP1gigjaKYuIZk

