# Runs inside GitLab's toolbox pod as `gitlab-rails runner -` (this file arrives on stdin, never on a command
# line). Finds one of this stack's runners (a deploy runner tagged with its environment, or the build runner, untagged)
# by its description among the runners of the deploy group (created, owned by the
# first active administrator, when missing), or creates it there as a group runner (the service behind
# POST /api/v4/user/runners with runner_type=group_type and group_id), keeps its tags and flags as configured, and
# prints its authentication token (glrt-...) on one marked line for runner-bootstrap.sh. Re-running finds the same
# runner and prints the same token: nothing is created twice. A runner of the same description elsewhere (the
# instance runner earlier versions created, or one of a group configured before) is deleted, so no project outside
# the group keeps a runner with the deployer's rights; its manager restarts with the new token (gitlab_runner.py).
# The dollar-brace parameters are rendered in by components/platform/runner_bootstrap.py as checked Ruby literals.
description = ${description}
group_path = ${group}
settings = { tag_list: [${tags}], run_untagged: ${run_untagged}, access_level: ${access_level} }

admin = User.admins.active.order(:id).first
abort('no active GitLab administrator to create the runner as') if admin.nil?

# With admin mode on, an administrator holds Owner rights on every group (what creating a group runner needs:
# :create_runners). `gitlab-rails runner` already counts as privileged (Gitlab::Auth::CurrentUserMode
# privileged_runtime?); the bypass keeps that true should a later version stop doing so.
Gitlab::Auth::CurrentUserMode.bypass_session!(admin.id) do
  # The group and each missing parent, top down (Groups::CreateService makes its creator the Owner).
  group = nil
  group_path.split('/').each do |segment|
    full_path = group ? "#{group.full_path}/#{segment}" : segment
    found = Group.find_by_full_path(full_path)
    if found.nil?
      params = { name: segment, path: segment, visibility_level: Gitlab::VisibilityLevel::PRIVATE }
      params[:parent_id] = group.id if group
      response = Groups::CreateService.new(admin, params).execute
      unless response.success?
        reasons = response.payload[:group]&.errors&.full_messages || []
        abort("creating group #{full_path} failed: #{[response.message, *reasons].join('; ')}")
      end
      found = response.payload[:group]
    end
    group = found
  end

  Ci::Runner.where(description: description).each do |other|
    next if other.group_type? && other.groups.include?(group)

    other.destroy!
    puts "deleted runner #{other.id} (#{other.runner_type}) of the same description outside group #{group_path}"
  end

  runner = group.runners.find_by(description: description)
  if runner.nil?
    response = Ci::Runners::CreateRunnerService.new(
      user: admin, params: { runner_type: 'group_type', scope: group, description: description, **settings }
    ).execute
    abort("creating the runner failed: #{response.message}") unless response.success?
    runner = response.payload[:runner]
  end
  runner.update!(settings)
  puts "RUNNER_TOKEN=#{runner.token}"
end
