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
data_versions.company_id uuid NOT NULL
data_versions.version bigint NOT NULL DEFAULT 1
dbupdate_migrations.id integer NOT NULL
dbupdate_migrations.name text NOT NULL
dbupdate_migrations.applied_at timestamp with time zone NOT NULL DEFAULT now()
device_admin_events.id bigint NOT NULL
device_admin_events.at timestamp with time zone NOT NULL DEFAULT now()
device_admin_events.actor text NOT NULL
device_admin_events.action text NOT NULL
device_admin_events.mac macaddr NOT NULL
device_admin_events.device_id uuid
device_admin_events.details jsonb NOT NULL DEFAULT '{}'::jsonb
device_cohorts.device_id uuid NOT NULL
device_cohorts.cohort text NOT NULL
device_cohorts.set_at timestamp with time zone NOT NULL DEFAULT now()
device_cohorts.set_by text NOT NULL
device_credentials.device_id uuid NOT NULL
device_credentials.secret_hash text NOT NULL
device_credentials.created_at timestamp with time zone NOT NULL DEFAULT now()
device_credentials.rotated_at timestamp with time zone NOT NULL DEFAULT now()
device_credentials.revoked_at timestamp with time zone
device_credentials.previous_secret_hash text
device_credentials.previous_valid_until timestamp with time zone
device_reports.device_id uuid NOT NULL
device_reports.mac macaddr NOT NULL
device_reports.reported_at timestamp with time zone NOT NULL DEFAULT now()
device_reports.failure_code text
device_reports.failure_message text
device_reports.failure_at timestamp with time zone
device_reports.drift_tables text[]
device_reports.drift_checked_at timestamp with time zone
device_wipes.device_id uuid NOT NULL
device_wipes.requested_at timestamp with time zone NOT NULL DEFAULT now()
device_wipes.requested_by text NOT NULL
device_wipes.last_manifest_id text
device_wipes.last_sent_at timestamp with time zone
devices.id uuid NOT NULL
devices.location_id uuid NOT NULL
devices.mac macaddr NOT NULL
devices.name text NOT NULL
devices.is_enabled boolean NOT NULL DEFAULT true
devices.created_at timestamp with time zone NOT NULL
devices.updated_at timestamp with time zone NOT NULL
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
release_events.id bigint NOT NULL
release_events.at timestamp with time zone NOT NULL DEFAULT now()
release_events.actor text NOT NULL
release_events.action text NOT NULL
release_events.details jsonb NOT NULL DEFAULT '{}'::jsonb
release_marks.location_id uuid NOT NULL
release_marks.version bigint NOT NULL
release_state.id boolean NOT NULL DEFAULT true
release_state.paused_at timestamp with time zone
release_state.paused_by text
release_state.pause_reason text
release_state.guard text NOT NULL DEFAULT 'clear'::text
release_state.guard_at timestamp with time zone
release_state.guard_by text
release_state.guard_detail jsonb
release_state.rollout_started_at timestamp with time zone
release_state.rollout_canaries_ok_at timestamp with time zone
release_state.rollout_ended_at timestamp with time zone
release_state.resumed_at timestamp with time zone
release_state.changed_at timestamp with time zone NOT NULL DEFAULT now()
rollout_marks.location_id uuid NOT NULL
rollout_marks.version bigint NOT NULL
scope_versions.location_id uuid NOT NULL
scope_versions.version bigint NOT NULL DEFAULT 1
sync_acknowledgements.manifest_id text NOT NULL
sync_acknowledgements.mac macaddr NOT NULL
sync_acknowledgements.completed_at timestamp with time zone NOT NULL DEFAULT now()
sync_acknowledgements.result text NOT NULL
sync_acknowledgements.duration_ms integer NOT NULL
sync_acknowledgements.device_counts_json jsonb NOT NULL
sync_acknowledgements.device_hashes_json jsonb NOT NULL
sync_acknowledgements.error_text text
sync_acknowledgements.payload_sha256 text
sync_manifest_headers.manifest_id text NOT NULL
sync_manifest_headers.device_id uuid NOT NULL
sync_manifest_headers.mac macaddr NOT NULL
sync_manifest_headers.generated_at timestamp with time zone NOT NULL
sync_manifest_headers.expires_at timestamp with time zone NOT NULL
sync_manifest_headers.schema_version integer NOT NULL
sync_manifest_headers.global_sha256 text NOT NULL
sync_manifest_headers.filter_desc jsonb NOT NULL
sync_manifests.manifest_id text NOT NULL
sync_manifests.generated_at timestamp with time zone NOT NULL
sync_manifests.table_name text NOT NULL
sync_manifests.table_order smallint NOT NULL
sync_manifests.row_count bigint NOT NULL
sync_manifests.sha256 text NOT NULL
sync_manifests.filter_desc jsonb NOT NULL
sync_piece_fetches.id bigint NOT NULL
sync_piece_fetches.manifest_id text NOT NULL
sync_piece_fetches.mac text NOT NULL
sync_piece_fetches.device_id uuid
sync_piece_fetches.requested_at timestamp with time zone NOT NULL DEFAULT now()
sync_piece_fetches.completed_at timestamp with time zone
sync_piece_fetches.status text NOT NULL
sync_piece_fetches.error_code text
sync_piece_fetches.pieces_requested integer NOT NULL
sync_piece_fetches.pieces_sent integer
sync_piece_fetches.pieces_gone integer
sync_piece_fetches.bytes_sent bigint
sync_requests.id bigint NOT NULL
sync_requests.mac text NOT NULL
sync_requests.device_id uuid
sync_requests.manifest_id text
sync_requests.requested_at timestamp with time zone NOT NULL DEFAULT now()
sync_requests.completed_at timestamp with time zone
sync_requests.status text NOT NULL
sync_requests.reason text
sync_requests.error_code text
sync_requests.duration_ms integer
sync_requests.bytes_sent bigint
sync_requests.payload_sha256 text
sync_requests.remote_addr text
sync_requests.schema_version integer
sync_requests.software_version text
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
areas areas_location_id_fkey FOREIGN KEY (location_id) REFERENCES locations(id)
areas areas_pkey PRIMARY KEY (id)
companies companies_pkey PRIMARY KEY (id)
data_versions data_versions_pkey PRIMARY KEY (company_id)
dbupdate_migrations dbupdate_migrations_pkey PRIMARY KEY (id)
device_admin_events device_admin_events_action_check CHECK ((action = ANY (ARRAY['create'::text, 'enroll'::text, 'disable'::text, 'enable'::text, 'revoke'::text, 'cohort'::text])))
device_admin_events device_admin_events_pkey PRIMARY KEY (id)
device_cohorts device_cohorts_cohort_check CHECK ((cohort ~ '^[a-z0-9][a-z0-9_-]{0,62}$'::text))
device_cohorts device_cohorts_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices(id) ON DELETE CASCADE
device_cohorts device_cohorts_pkey PRIMARY KEY (device_id)
device_credentials device_credentials_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices(id) ON DELETE CASCADE
device_credentials device_credentials_pkey PRIMARY KEY (device_id)
device_reports device_reports_pkey PRIMARY KEY (device_id)
device_wipes device_wipes_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices(id) ON DELETE CASCADE
device_wipes device_wipes_pkey PRIMARY KEY (device_id)
devices devices_location_id_fkey FOREIGN KEY (location_id) REFERENCES locations(id)
devices devices_mac_key UNIQUE (mac)
devices devices_pkey PRIMARY KEY (id)
group_users group_users_group_id_fkey FOREIGN KEY (group_id) REFERENCES groups(id)
group_users group_users_pkey PRIMARY KEY (group_id, user_id)
group_users group_users_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id)
groups groups_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies(id)
groups groups_pkey PRIMARY KEY (id)
location_groups location_groups_group_id_fkey FOREIGN KEY (group_id) REFERENCES groups(id)
location_groups location_groups_location_id_fkey FOREIGN KEY (location_id) REFERENCES locations(id)
location_groups location_groups_pkey PRIMARY KEY (location_id, group_id)
locations locations_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies(id)
locations locations_pkey PRIMARY KEY (id)
release_events release_events_action_check CHECK ((action = ANY (ARRAY['pause'::text, 'resume'::text, 'trip'::text, 'approve'::text, 'reject'::text, 'rollout_start'::text, 'canaries_ok'::text, 'rollout_end'::text])))
release_events release_events_pkey PRIMARY KEY (id)
release_marks release_marks_pkey PRIMARY KEY (location_id)
release_state release_state_guard_check CHECK ((guard = ANY (ARRAY['clear'::text, 'tripped'::text, 'approved'::text, 'rejected'::text])))
release_state release_state_id_check CHECK (id)
release_state release_state_pkey PRIMARY KEY (id)
rollout_marks rollout_marks_pkey PRIMARY KEY (location_id)
scope_versions scope_versions_pkey PRIMARY KEY (location_id)
sync_acknowledgements sync_acknowledgements_pkey PRIMARY KEY (manifest_id)
sync_acknowledgements sync_acknowledgements_result_check CHECK ((result = ANY (ARRAY['Success'::text, 'Failed'::text])))
sync_manifest_headers sync_manifest_headers_pkey PRIMARY KEY (manifest_id)
sync_manifests sync_manifests_pkey PRIMARY KEY (manifest_id, table_name)
sync_piece_fetches sync_piece_fetches_pkey PRIMARY KEY (id)
sync_piece_fetches sync_piece_fetches_status_check CHECK ((status = ANY (ARRAY['started'::text, 'served'::text, 'refused'::text, 'error'::text, 'aborted'::text])))
sync_requests sync_requests_pkey PRIMARY KEY (id)
sync_requests sync_requests_status_check CHECK ((status = ANY (ARRAY['started'::text, 'served'::text, 'unchanged'::text, 'held'::text, 'invalid_input'::text, 'unauthenticated'::text, 'unknown_device'::text, 'disabled'::text, 'error'::text, 'aborted'::text, 'rate_limited'::text, 'overloaded'::text, 'unsupported_schema'::text])))
users users_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies(id)
users users_pkey PRIMARY KEY (id)
-- indexes
CREATE INDEX areas_location_id_idx ON public.areas USING btree (location_id)
CREATE UNIQUE INDEX areas_pkey ON public.areas USING btree (id)
CREATE UNIQUE INDEX companies_pkey ON public.companies USING btree (id)
CREATE UNIQUE INDEX data_versions_pkey ON public.data_versions USING btree (company_id)
CREATE UNIQUE INDEX dbupdate_migrations_pkey ON public.dbupdate_migrations USING btree (id)
CREATE INDEX device_admin_events_mac_at_idx ON public.device_admin_events USING btree (mac, at)
CREATE UNIQUE INDEX device_admin_events_pkey ON public.device_admin_events USING btree (id)
CREATE INDEX device_cohorts_cohort_idx ON public.device_cohorts USING btree (cohort)
CREATE UNIQUE INDEX device_cohorts_pkey ON public.device_cohorts USING btree (device_id)
CREATE UNIQUE INDEX device_credentials_pkey ON public.device_credentials USING btree (device_id)
CREATE INDEX device_reports_drift_checked_at_idx ON public.device_reports USING btree (drift_checked_at) WHERE (drift_checked_at IS NOT NULL)
CREATE UNIQUE INDEX device_reports_pkey ON public.device_reports USING btree (device_id)
CREATE UNIQUE INDEX device_wipes_pkey ON public.device_wipes USING btree (device_id)
CREATE INDEX devices_location_id_idx ON public.devices USING btree (location_id)
CREATE UNIQUE INDEX devices_mac_key ON public.devices USING btree (mac)
CREATE UNIQUE INDEX devices_pkey ON public.devices USING btree (id)
CREATE UNIQUE INDEX group_users_pkey ON public.group_users USING btree (group_id, user_id)
CREATE INDEX group_users_user_id_idx ON public.group_users USING btree (user_id)
CREATE INDEX groups_company_id_idx ON public.groups USING btree (company_id)
CREATE UNIQUE INDEX groups_pkey ON public.groups USING btree (id)
CREATE INDEX location_groups_group_id_idx ON public.location_groups USING btree (group_id)
CREATE UNIQUE INDEX location_groups_pkey ON public.location_groups USING btree (location_id, group_id)
CREATE INDEX locations_company_id_idx ON public.locations USING btree (company_id)
CREATE UNIQUE INDEX locations_pkey ON public.locations USING btree (id)
CREATE INDEX release_events_at_idx ON public.release_events USING btree (at)
CREATE UNIQUE INDEX release_events_pkey ON public.release_events USING btree (id)
CREATE UNIQUE INDEX release_marks_pkey ON public.release_marks USING btree (location_id)
CREATE UNIQUE INDEX release_state_pkey ON public.release_state USING btree (id)
CREATE UNIQUE INDEX rollout_marks_pkey ON public.rollout_marks USING btree (location_id)
CREATE UNIQUE INDEX scope_versions_pkey ON public.scope_versions USING btree (location_id)
CREATE INDEX sync_acknowledgements_completed_at_idx ON public.sync_acknowledgements USING btree (completed_at)
CREATE INDEX sync_acknowledgements_failed_at_idx ON public.sync_acknowledgements USING btree (completed_at) WHERE (result = 'Failed'::text)
CREATE INDEX sync_acknowledgements_failed_idx ON public.sync_acknowledgements USING btree (mac, completed_at) WHERE (result = 'Failed'::text)
CREATE INDEX sync_acknowledgements_mac_completed_idx ON public.sync_acknowledgements USING btree (mac, completed_at)
CREATE UNIQUE INDEX sync_acknowledgements_pkey ON public.sync_acknowledgements USING btree (manifest_id)
CREATE INDEX sync_acknowledgements_success_idx ON public.sync_acknowledgements USING btree (mac, completed_at) WHERE (result = 'Success'::text)
CREATE INDEX sync_manifest_headers_device_generated_idx ON public.sync_manifest_headers USING btree (device_id, generated_at)
CREATE INDEX sync_manifest_headers_mac_generated_idx ON public.sync_manifest_headers USING btree (mac, generated_at)
CREATE UNIQUE INDEX sync_manifest_headers_pkey ON public.sync_manifest_headers USING btree (manifest_id)
CREATE UNIQUE INDEX sync_manifests_pkey ON public.sync_manifests USING btree (manifest_id, table_name)
CREATE INDEX sync_piece_fetches_manifest_idx ON public.sync_piece_fetches USING btree (manifest_id)
CREATE UNIQUE INDEX sync_piece_fetches_pkey ON public.sync_piece_fetches USING btree (id)
CREATE INDEX sync_piece_fetches_requested_at_idx ON public.sync_piece_fetches USING btree (requested_at)
CREATE INDEX sync_requests_errors_idx ON public.sync_requests USING btree (mac, requested_at) WHERE (error_code IS NOT NULL)
CREATE INDEX sync_requests_mac_requested_at_idx ON public.sync_requests USING btree (mac, requested_at)
CREATE INDEX sync_requests_manifest_id_idx ON public.sync_requests USING btree (manifest_id) WHERE (manifest_id IS NOT NULL)
CREATE UNIQUE INDEX sync_requests_pkey ON public.sync_requests USING btree (id)
CREATE INDEX sync_requests_requested_at_idx ON public.sync_requests USING btree (requested_at)
CREATE INDEX sync_requests_started_idx ON public.sync_requests USING btree (requested_at) WHERE (status = 'started'::text)
CREATE INDEX users_company_id_idx ON public.users USING btree (company_id)
CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)
-- triggers
CREATE TRIGGER areas_versions_del AFTER DELETE ON public.areas REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER areas_versions_ins AFTER INSERT ON public.areas REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER areas_versions_trunc AFTER TRUNCATE ON public.areas FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()
CREATE TRIGGER areas_versions_upd AFTER UPDATE ON public.areas REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER areas_zscope_del AFTER DELETE ON public.areas REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'location_id')
CREATE TRIGGER areas_zscope_ins AFTER INSERT ON public.areas REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'location_id')
CREATE TRIGGER areas_zscope_trunc AFTER TRUNCATE ON public.areas FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_truncate()
CREATE TRIGGER areas_zscope_upd AFTER UPDATE ON public.areas REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'location_id')
CREATE TRIGGER companies_versions_del AFTER DELETE ON public.companies REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_companies()
CREATE TRIGGER companies_versions_ins AFTER INSERT ON public.companies REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_companies()
CREATE TRIGGER companies_versions_trunc AFTER TRUNCATE ON public.companies FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()
CREATE TRIGGER companies_versions_upd AFTER UPDATE ON public.companies REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_companies()
CREATE TRIGGER companies_zscope_del AFTER DELETE ON public.companies REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER companies_zscope_ins AFTER INSERT ON public.companies REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER companies_zscope_trunc AFTER TRUNCATE ON public.companies FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_truncate()
CREATE TRIGGER companies_zscope_upd AFTER UPDATE ON public.companies REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER devices_versions_del AFTER DELETE ON public.devices REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER devices_versions_ins AFTER INSERT ON public.devices REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER devices_versions_trunc AFTER TRUNCATE ON public.devices FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()
CREATE TRIGGER devices_versions_upd AFTER UPDATE ON public.devices REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER group_users_same_company_ins AFTER INSERT ON public.group_users REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_check_group_user_company()
CREATE TRIGGER group_users_same_company_upd AFTER UPDATE ON public.group_users REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_check_group_user_company()
CREATE TRIGGER group_users_versions_del AFTER DELETE ON public.group_users REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_group()
CREATE TRIGGER group_users_versions_ins AFTER INSERT ON public.group_users REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_group()
CREATE TRIGGER group_users_versions_trunc AFTER TRUNCATE ON public.group_users FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()
CREATE TRIGGER group_users_versions_upd AFTER UPDATE ON public.group_users REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_group()
CREATE TRIGGER group_users_zscope_del AFTER DELETE ON public.group_users REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'group_id')
CREATE TRIGGER group_users_zscope_ins AFTER INSERT ON public.group_users REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'group_id')
CREATE TRIGGER group_users_zscope_trunc AFTER TRUNCATE ON public.group_users FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_truncate()
CREATE TRIGGER group_users_zscope_upd AFTER UPDATE ON public.group_users REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'group_id')
CREATE TRIGGER groups_versions_del AFTER DELETE ON public.groups REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER groups_versions_ins AFTER INSERT ON public.groups REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER groups_versions_trunc AFTER TRUNCATE ON public.groups FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()
CREATE TRIGGER groups_versions_upd AFTER UPDATE ON public.groups REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER groups_zscope_del AFTER DELETE ON public.groups REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER groups_zscope_ins AFTER INSERT ON public.groups REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER groups_zscope_trunc AFTER TRUNCATE ON public.groups FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_truncate()
CREATE TRIGGER groups_zscope_upd AFTER UPDATE ON public.groups REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER location_groups_same_company_ins AFTER INSERT ON public.location_groups REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_check_location_group_company()
CREATE TRIGGER location_groups_same_company_upd AFTER UPDATE ON public.location_groups REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_check_location_group_company()
CREATE TRIGGER location_groups_versions_del AFTER DELETE ON public.location_groups REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER location_groups_versions_ins AFTER INSERT ON public.location_groups REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER location_groups_versions_trunc AFTER TRUNCATE ON public.location_groups FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()
CREATE TRIGGER location_groups_versions_upd AFTER UPDATE ON public.location_groups REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_location()
CREATE TRIGGER location_groups_zscope_del AFTER DELETE ON public.location_groups REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'location_id')
CREATE TRIGGER location_groups_zscope_ins AFTER INSERT ON public.location_groups REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'location_id')
CREATE TRIGGER location_groups_zscope_trunc AFTER TRUNCATE ON public.location_groups FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_truncate()
CREATE TRIGGER location_groups_zscope_upd AFTER UPDATE ON public.location_groups REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('', 'location_id')
CREATE TRIGGER locations_versions_del AFTER DELETE ON public.locations REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER locations_versions_ins AFTER INSERT ON public.locations REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER locations_versions_trunc AFTER TRUNCATE ON public.locations FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()
CREATE TRIGGER locations_versions_upd AFTER UPDATE ON public.locations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER locations_zscope_del AFTER DELETE ON public.locations REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER locations_zscope_ins AFTER INSERT ON public.locations REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER locations_zscope_trunc AFTER TRUNCATE ON public.locations FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_truncate()
CREATE TRIGGER locations_zscope_upd AFTER UPDATE ON public.locations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER users_versions_del AFTER DELETE ON public.users REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER users_versions_ins AFTER INSERT ON public.users REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER users_versions_trunc AFTER TRUNCATE ON public.users FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()
CREATE TRIGGER users_versions_upd AFTER UPDATE ON public.users REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_by_company()
CREATE TRIGGER users_zscope_del AFTER DELETE ON public.users REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER users_zscope_ins AFTER INSERT ON public.users REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
CREATE TRIGGER users_zscope_trunc AFTER TRUNCATE ON public.users FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_truncate()
CREATE TRIGGER users_zscope_upd AFTER UPDATE ON public.users REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger('id', '')
-- functions
CREATE OR REPLACE FUNCTION public.dbupdate_bump_scopes(locations uuid[])
 RETURNS void
 LANGUAGE sql
AS $function$
  INSERT INTO scope_versions (location_id)
  SELECT DISTINCT l FROM unnest(locations) l WHERE l IS NOT NULL
  ORDER BY 1
  ON CONFLICT (location_id) DO UPDATE SET version = scope_versions.version + 1;
$function$
CREATE OR REPLACE FUNCTION public.dbupdate_bump_versions(companies uuid[])
 RETURNS void
 LANGUAGE sql
AS $function$
  INSERT INTO data_versions (company_id)
  SELECT DISTINCT c FROM unnest(companies) c WHERE c IS NOT NULL
  ON CONFLICT (company_id) DO UPDATE SET version = data_versions.version + 1;
$function$
CREATE OR REPLACE FUNCTION public.dbupdate_check_group_user_company()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE bad record;
BEGIN
  SELECT n.group_id, n.user_id INTO bad
  FROM new_rows n
  JOIN groups g ON g.id = n.group_id
  JOIN users u ON u.id = n.user_id
  WHERE g.company_id <> u.company_id
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'group % and user % belong to different companies', bad.group_id, bad.user_id
      USING ERRCODE = '23514';
  END IF;
  RETURN NULL;
END $function$
CREATE OR REPLACE FUNCTION public.dbupdate_check_location_group_company()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE bad record;
BEGIN
  SELECT n.location_id, n.group_id INTO bad
  FROM new_rows n
  JOIN locations l ON l.id = n.location_id
  JOIN groups g ON g.id = n.group_id
  WHERE l.company_id <> g.company_id
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'location % and group % belong to different companies', bad.location_id, bad.group_id
      USING ERRCODE = '23514';
  END IF;
  RETURN NULL;
END $function$
CREATE OR REPLACE FUNCTION public.dbupdate_scopes_of(tbl text, ids uuid[], refs uuid[])
 RETURNS uuid[]
 LANGUAGE sql
 STABLE
AS $function$
  SELECT ARRAY(
    SELECT l.id FROM locations l WHERE tbl = 'companies' AND l.company_id = ANY(ids)
    UNION SELECT unnest(ids) WHERE tbl = 'locations'
    UNION SELECT unnest(refs) WHERE tbl IN ('location_groups', 'areas')
    UNION SELECT lg.location_id FROM location_groups lg WHERE tbl = 'groups' AND lg.group_id = ANY(ids)
    UNION SELECT lg.location_id FROM location_groups lg WHERE tbl = 'group_users' AND lg.group_id = ANY(refs)
    UNION SELECT lg.location_id FROM group_users gu JOIN location_groups lg ON lg.group_id = gu.group_id
           WHERE tbl = 'users' AND gu.user_id = ANY(ids)
  );
$function$
CREATE OR REPLACE FUNCTION public.dbupdate_scopes_trigger()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  pick text := format('SELECT array_agg(%s), array_agg(%s) FROM ',
    CASE WHEN TG_ARGV[0] = '' THEN 'NULL::uuid' ELSE quote_ident(TG_ARGV[0]) END,
    CASE WHEN TG_ARGV[1] = '' THEN 'NULL::uuid' ELSE quote_ident(TG_ARGV[1]) END);
  ids uuid[];
  refs uuid[];
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    EXECUTE pick || 'new_rows' INTO ids, refs;
    PERFORM dbupdate_bump_scopes(dbupdate_scopes_of(TG_TABLE_NAME, ids, refs));
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    EXECUTE pick || 'old_rows' INTO ids, refs;
    PERFORM dbupdate_bump_scopes(dbupdate_scopes_of(TG_TABLE_NAME, ids, refs));
  END IF;
  RETURN NULL;
END $function$
CREATE OR REPLACE FUNCTION public.dbupdate_scopes_truncate()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  UPDATE scope_versions SET version = version + 1;
  RETURN NULL;
END $function$
CREATE OR REPLACE FUNCTION public.dbupdate_versions_by_company()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT company_id FROM new_rows));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT company_id FROM old_rows));
  ELSE
    PERFORM dbupdate_bump_versions(ARRAY(SELECT company_id FROM new_rows UNION SELECT company_id FROM old_rows));
  END IF;
  RETURN NULL;
END $function$
CREATE OR REPLACE FUNCTION public.dbupdate_versions_by_group()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT g.company_id FROM groups g WHERE g.id IN (SELECT group_id FROM new_rows)));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT g.company_id FROM groups g WHERE g.id IN (SELECT group_id FROM old_rows)));
  ELSE
    PERFORM dbupdate_bump_versions(ARRAY(SELECT g.company_id FROM groups g WHERE g.id IN (SELECT group_id FROM new_rows) UNION SELECT g.company_id FROM groups g WHERE g.id IN (SELECT group_id FROM old_rows)));
  END IF;
  RETURN NULL;
END $function$
CREATE OR REPLACE FUNCTION public.dbupdate_versions_by_location()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT l.company_id FROM locations l WHERE l.id IN (SELECT location_id FROM new_rows)));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT l.company_id FROM locations l WHERE l.id IN (SELECT location_id FROM old_rows)));
  ELSE
    PERFORM dbupdate_bump_versions(ARRAY(SELECT l.company_id FROM locations l WHERE l.id IN (SELECT location_id FROM new_rows) UNION SELECT l.company_id FROM locations l WHERE l.id IN (SELECT location_id FROM old_rows)));
  END IF;
  RETURN NULL;
END $function$
CREATE OR REPLACE FUNCTION public.dbupdate_versions_companies()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT id FROM new_rows));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT id FROM old_rows));
  ELSE
    PERFORM dbupdate_bump_versions(ARRAY(SELECT id FROM new_rows UNION SELECT id FROM old_rows));
  END IF;
  RETURN NULL;
END $function$
CREATE OR REPLACE FUNCTION public.dbupdate_versions_truncate()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  UPDATE data_versions SET version = version + 1;
  RETURN NULL;
END $function$
