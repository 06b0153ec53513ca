# Runs inside GitLab's toolbox pod as `gitlab-rails runner -` (this file arrives on stdin, never on a command
# line). Finds this stack's instance runner by its description, or creates it as the first active administrator
# (the same service Admin > CI/CD > Runners > New instance runner uses), keeps its tags and flags as configured,
# and prints its authentication token (glrt-...) on one marked line for runner-bootstrap.sh. Re-running finds the
# same runner and prints the same token: nothing is created twice.
# The dollar-brace parameters are rendered in by components/platform/runner_bootstrap.py as checked Ruby literals.
description = ${description}
settings = { tag_list: [${tag}], run_untagged: ${run_untagged}, access_level: ${access_level} }

runner = Ci::Runner.instance_type.find_by(description: description)
if runner.nil?
  admin = User.admins.active.order(:id).first
  abort('no active GitLab administrator to create the runner as') if admin.nil?
  # Admin mode (if an administrator switched it on) asks for a session; a console has none.
  response = Gitlab::Auth::CurrentUserMode.bypass_session!(admin.id) do
    Ci::Runners::CreateRunnerService.new(
      user: admin, params: { runner_type: 'instance_type', description: description, **settings }
    ).execute
  end
  abort("creating the runner failed: #{response.message}") unless response.success?
  runner = response.payload[:runner]
end
runner.update!(settings)
puts "RUNNER_TOKEN=#{runner.token}"
