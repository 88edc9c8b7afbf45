-- Whether the relation {rel} (an oid) is pitstop's own: it lives in the extension's schema, or
-- pg_depend says it belongs to the extension. Index health and bloat leave these out unless
-- include_self.
EXISTS (SELECT 1 FROM pg_catalog.pg_extension e
         WHERE e.extname = 'pitstop'
           AND (e.extnamespace = (SELECT oc.relnamespace FROM pg_catalog.pg_class oc WHERE oc.oid = {rel})
                OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend od
                            WHERE od.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND od.objid = {rel}
                              AND od.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                              AND od.refobjid = e.oid AND od.deptype = 'e')))
