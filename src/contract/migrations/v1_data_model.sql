-- The data model of CONTRACT §1, identical on Central and every Edge.
CREATE TABLE companies (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE TABLE locations (
  id uuid PRIMARY KEY,
  company_id uuid NOT NULL REFERENCES companies (id),
  name text NOT NULL,
  address text NULL,
  timezone text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX locations_company_id_idx ON locations (company_id);

CREATE TABLE groups (
  id uuid PRIMARY KEY,
  company_id uuid NOT NULL REFERENCES companies (id),
  name text NOT NULL,
  description text NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX groups_company_id_idx ON groups (company_id);

CREATE TABLE location_groups (
  location_id uuid NOT NULL REFERENCES locations (id),
  group_id uuid NOT NULL REFERENCES groups (id),
  PRIMARY KEY (location_id, group_id)
);
CREATE INDEX location_groups_group_id_idx ON location_groups (group_id);

CREATE TABLE users (
  id uuid PRIMARY KEY,
  company_id uuid NOT NULL REFERENCES companies (id),
  email text NOT NULL,
  display_name text NOT NULL,
  phone text NULL,
  employee_number bigint NULL,
  is_active boolean NOT NULL,
  settings jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX users_company_id_idx ON users (company_id);

CREATE TABLE group_users (
  group_id uuid NOT NULL REFERENCES groups (id),
  user_id uuid NOT NULL REFERENCES users (id),
  PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_users_user_id_idx ON group_users (user_id);

CREATE TABLE areas (
  id uuid PRIMARY KEY,
  location_id uuid NOT NULL REFERENCES locations (id),
  name text NOT NULL,
  floor integer NULL,
  size_sqm numeric(12, 2) NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX areas_location_id_idx ON areas (location_id);

CREATE TABLE devices (
  id uuid PRIMARY KEY,
  location_id uuid NOT NULL REFERENCES locations (id),
  mac macaddr NOT NULL UNIQUE,
  name text NOT NULL,
  is_enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX devices_location_id_idx ON devices (location_id);
