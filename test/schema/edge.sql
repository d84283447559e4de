-- columns
areas.id uuid NOT NULL
areas.location_id uuid NOT NULL
areas.name text NOT NULL
areas.floor integer
areas.size_sqm numeric(12,2)
areas.created_at timestamp with time zone NOT NULL
areas.updated_at timestamp with time zone NOT NULL
companies.id uuid NOT NULL
companies.name text NOT NULL
companies.created_at timestamp with time zone NOT NULL
companies.updated_at timestamp with time zone NOT NULL
dbupdate_migrations.id integer NOT NULL
dbupdate_migrations.name text NOT NULL
dbupdate_migrations.applied_at timestamp with time zone NOT NULL DEFAULT now()
dbupdate_news.manifest_id text NOT NULL
dbupdate_news.tables text[] NOT NULL
dbupdate_news.committed_at timestamp with time zone NOT NULL
devices.id uuid NOT NULL
devices.location_id uuid NOT NULL
devices.mac macaddr NOT NULL
devices.name text NOT NULL
devices.is_enabled boolean NOT NULL DEFAULT true
devices.created_at timestamp with time zone NOT NULL
devices.updated_at timestamp with time zone NOT NULL
edge_held_pieces.table_name text NOT NULL
edge_held_pieces.ord integer NOT NULL
edge_held_pieces.schema_version integer NOT NULL
edge_held_pieces.table_sha256 text NOT NULL
edge_held_pieces.id text NOT NULL
edge_held_pieces.row_count integer NOT NULL
edge_held_pieces.last_key text NOT NULL
edge_pending_acks.manifest_id text NOT NULL
edge_pending_acks.body jsonb NOT NULL
edge_pending_acks.attempts integer NOT NULL DEFAULT 0
edge_pending_acks.last_error text
edge_pending_acks.created_at timestamp with time zone NOT NULL DEFAULT now()
edge_staged_pieces.id text NOT NULL
edge_staged_pieces.table_name text NOT NULL
edge_staged_pieces.row_count integer NOT NULL
edge_staged_pieces.data bytea NOT NULL
edge_staged_pieces.staged_at timestamp with time zone NOT NULL DEFAULT now()
edge_sync_log.id bigint NOT NULL
edge_sync_log.manifest_id text
edge_sync_log.started_at timestamp with time zone NOT NULL DEFAULT now()
edge_sync_log.completed_at timestamp with time zone
edge_sync_log.status text NOT NULL
edge_sync_log.trigger text NOT NULL
edge_sync_log.duration_ms integer
edge_sync_log.error_code text
edge_sync_log.error_text text
edge_sync_log.global_sha256 text
edge_sync_log.rows_loaded bigint
edge_sync_log.bytes_received bigint
edge_sync_log.payload_sha256 text
edge_sync_log.ack_status text
edge_sync_log.error_reason text
edge_sync_log.held_reason text
edge_sync_log.wiped boolean NOT NULL DEFAULT false
edge_sync_state.key text NOT NULL
edge_sync_state.value text NOT NULL
edge_sync_state.updated_at timestamp with time zone NOT NULL DEFAULT now()
edge_sync_tables.edge_sync_id bigint NOT NULL
edge_sync_tables.table_name text NOT NULL
edge_sync_tables.table_order smallint NOT NULL
edge_sync_tables.row_count bigint NOT NULL
edge_sync_tables.sha256 text NOT NULL
group_users.group_id uuid NOT NULL
group_users.user_id uuid NOT NULL
groups.id uuid NOT NULL
groups.company_id uuid NOT NULL
groups.name text NOT NULL
groups.description text
groups.created_at timestamp with time zone NOT NULL
groups.updated_at timestamp with time zone NOT NULL
location_groups.location_id uuid NOT NULL
location_groups.group_id uuid NOT NULL
locations.id uuid NOT NULL
locations.company_id uuid NOT NULL
locations.name text NOT NULL
locations.address text
locations.timezone text NOT NULL
locations.created_at timestamp with time zone NOT NULL
locations.updated_at timestamp with time zone NOT NULL
users.id uuid NOT NULL
users.company_id uuid NOT NULL
users.email text NOT NULL
users.display_name text NOT NULL
users.phone text
users.employee_number bigint
users.is_active boolean NOT NULL
users.settings jsonb NOT NULL DEFAULT '{}'::jsonb
users.created_at timestamp with time zone NOT NULL
users.updated_at timestamp with time zone NOT NULL
-- constraints
areas areas_location_id_fkey FOREIGN KEY (location_id) REFERENCES locations(id) DEFERRABLE
areas areas_pkey PRIMARY KEY (id)
companies companies_pkey PRIMARY KEY (id)
dbupdate_migrations dbupdate_migrations_pkey PRIMARY KEY (id)
dbupdate_news dbupdate_news_pkey PRIMARY KEY (manifest_id)
devices devices_location_id_fkey FOREIGN KEY (location_id) REFERENCES locations(id) DEFERRABLE
devices devices_mac_key UNIQUE (mac)
devices devices_pkey PRIMARY KEY (id)
edge_held_pieces edge_held_pieces_pkey PRIMARY KEY (table_name, ord)
edge_pending_acks edge_pending_acks_pkey PRIMARY KEY (manifest_id)
edge_staged_pieces edge_staged_pieces_pkey PRIMARY KEY (id)
edge_sync_log edge_sync_log_ack_status_check CHECK ((ack_status = ANY (ARRAY['sent'::text, 'pending'::text, 'failed'::text, 'none'::text])))
edge_sync_log edge_sync_log_held_reason_check CHECK ((held_reason = ANY (ARRAY['paused'::text, 'guard'::text, 'wave'::text, 'window'::text])))
edge_sync_log edge_sync_log_pkey PRIMARY KEY (id)
edge_sync_log edge_sync_log_status_check CHECK ((status = ANY (ARRAY['running'::text, 'success'::text, 'unchanged'::text, 'failed'::text])))
edge_sync_state edge_sync_state_pkey PRIMARY KEY (key)
edge_sync_tables edge_sync_tables_edge_sync_id_fkey FOREIGN KEY (edge_sync_id) REFERENCES edge_sync_log(id)
edge_sync_tables edge_sync_tables_pkey PRIMARY KEY (edge_sync_id, table_name)
group_users group_users_group_id_fkey FOREIGN KEY (group_id) REFERENCES groups(id) DEFERRABLE
group_users group_users_pkey PRIMARY KEY (group_id, user_id)
group_users group_users_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id) DEFERRABLE
groups groups_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies(id) DEFERRABLE
groups groups_pkey PRIMARY KEY (id)
location_groups location_groups_group_id_fkey FOREIGN KEY (group_id) REFERENCES groups(id) DEFERRABLE
location_groups location_groups_location_id_fkey FOREIGN KEY (location_id) REFERENCES locations(id) DEFERRABLE
location_groups location_groups_pkey PRIMARY KEY (location_id, group_id)
locations locations_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies(id) DEFERRABLE
locations locations_pkey PRIMARY KEY (id)
users users_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies(id) DEFERRABLE
users users_pkey PRIMARY KEY (id)
-- indexes
CREATE INDEX areas_location_id_idx ON public.areas USING btree (location_id)
CREATE UNIQUE INDEX areas_pkey ON public.areas USING btree (id)
CREATE UNIQUE INDEX companies_pkey ON public.companies USING btree (id)
CREATE UNIQUE INDEX dbupdate_migrations_pkey ON public.dbupdate_migrations USING btree (id)
CREATE INDEX dbupdate_news_committed_at_idx ON public.dbupdate_news USING btree (committed_at)
CREATE UNIQUE INDEX dbupdate_news_pkey ON public.dbupdate_news USING btree (manifest_id)
CREATE INDEX devices_location_id_idx ON public.devices USING btree (location_id)
CREATE UNIQUE INDEX devices_mac_key ON public.devices USING btree (mac)
CREATE UNIQUE INDEX devices_pkey ON public.devices USING btree (id)
CREATE UNIQUE INDEX edge_held_pieces_pkey ON public.edge_held_pieces USING btree (table_name, ord)
CREATE UNIQUE INDEX edge_pending_acks_pkey ON public.edge_pending_acks USING btree (manifest_id)
CREATE UNIQUE INDEX edge_staged_pieces_pkey ON public.edge_staged_pieces USING btree (id)
CREATE INDEX edge_sync_log_failed_idx ON public.edge_sync_log USING btree (id) WHERE ((status = 'failed'::text) AND (error_code IS NOT NULL))
CREATE UNIQUE INDEX edge_sync_log_pkey ON public.edge_sync_log USING btree (id)
CREATE INDEX edge_sync_log_started_at_idx ON public.edge_sync_log USING btree (started_at)
CREATE UNIQUE INDEX edge_sync_state_pkey ON public.edge_sync_state USING btree (key)
CREATE UNIQUE INDEX edge_sync_tables_pkey ON public.edge_sync_tables USING btree (edge_sync_id, table_name)
CREATE UNIQUE INDEX group_users_pkey ON public.group_users USING btree (group_id, user_id)
CREATE INDEX group_users_user_id_idx ON public.group_users USING btree (user_id)
CREATE INDEX groups_company_id_idx ON public.groups USING btree (company_id)
CREATE UNIQUE INDEX groups_pkey ON public.groups USING btree (id)
CREATE INDEX location_groups_group_id_idx ON public.location_groups USING btree (group_id)
CREATE UNIQUE INDEX location_groups_pkey ON public.location_groups USING btree (location_id, group_id)
CREATE INDEX locations_company_id_idx ON public.locations USING btree (company_id)
CREATE UNIQUE INDEX locations_pkey ON public.locations USING btree (id)
CREATE INDEX users_company_id_idx ON public.users USING btree (company_id)
CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)
-- triggers
-- functions
