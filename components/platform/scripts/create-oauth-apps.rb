# Runs inside GitLab's toolbox pod as `gitlab-rails runner -`, after oauth-bootstrap.sh put `apps_json` (a
# single-quoted heredoc of the applications, from a mounted Secret) before it on stdin: no value is part of this
# program. For each application: find it by name among the instance-wide ones (Admin > Applications: no owner) or
# create it, set its client id, redirect URIs, scopes and flags as given, and store its secret (hashed, as GitLab
# keeps every application secret: Doorkeeper's hash_application_secrets) unless the stored one already matches.
# Re-running changes nothing. Prints one line per application (name and state), never a secret.
require 'json'

begin
  apps = JSON.parse(apps_json)
rescue JSON::ParserError
  abort('the OAuth applications are not valid JSON') # the parser's own message would quote the data
end

# Every application belongs to an organization in current GitLab; instance-wide ones to the default one.
organization = if defined?(Organizations::Organization) && Organizations::Organization.respond_to?(:default_organization)
                 Organizations::Organization.default_organization
               end

apps.each do |spec|
  name = spec.fetch('name')
  app = Authn::OauthApplication.find_or_initialize_by(name: name, owner_id: nil)
  created = app.new_record?
  # trusted: GitLab skips the consent screen (these are the platform's own tools); confidential: the client keeps
  # its secret on a server (kubectl, a public client, proves itself with PKCE instead).
  app.assign_attributes(uid: spec.fetch('uid'), redirect_uri: spec.fetch('redirect_uris').join("\n"),
                        scopes: spec.fetch('scopes'), confidential: spec.fetch('confidential'), trusted: true)
  app.organization = organization if organization && app.respond_to?(:organization=) && app.organization.nil?
  secret = spec.fetch('secret')
  Doorkeeper.config.application_secret_strategy.store_secret(app, :secret, secret) unless app.secret_matches?(secret)
  state = if created then 'created' elsif app.changed? then 'updated' else 'unchanged' end
  begin
    app.save!
  rescue ActiveRecord::RecordInvalid => e
    abort("OAuth application #{name}: #{e.record.errors.full_messages.join(', ')}")
  end
  puts "OAUTH_APPLICATION #{name}: #{state}"
end
