-- depends: 0007.cheapen-search-text
-- One row per person (or application) that signed in with Microsoft Entra ID. Identity is the
-- token's (tid, oid): `oid` alone is unique only within a tenant, and `sub` differs per app.
-- Names are display data refreshed from the tokens, never identity.

CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id uuid NOT NULL,
    object_id uuid NOT NULL,
    email text,
    display_name text,
    is_admin boolean NOT NULL DEFAULT false,
    -- Whether the user's latest token carried the admin app role (Registry.Admin): an admin
    -- through Entra ID, shown beside the flag above that the registry's admins set.
    has_admin_role boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_tenant_object_key UNIQUE (tenant_id, object_id),
    CONSTRAINT users_email_length CHECK (char_length(email) <= 200),
    CONSTRAINT users_display_name_length CHECK (char_length(display_name) <= 200)
);
