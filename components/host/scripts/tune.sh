#!/usr/bin/env bash
# Host tuning for one node: sysctl drop-ins, THP policy, CPU governor, clocksource, swap off, the
# AppArmor profile of CI build containers, the seccomp profile of io_uring services, SSH by key only and
# security-only unattended upgrades without reboots.
# Idempotent: every file is rewritten only when its content differs, services are restarted only
# when a file changed, so a second run changes nothing.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
# @params
source lib.sh

wait_for_boot

# --- sysctl drop-ins (applied live, no reboot) -------------------------------------------------
# The marker keeps the apply pending until `sysctl --system` ran: a run that stops in between applies on its retry.
sysctl_pending=/var/lib/adplatform/sysctl-pending
sysctl_changed=""
sysctl_changed+=$(write_pending "$sysctl_pending" /etc/sysctl.d/60-adplatform-baseline.conf 0644 "$SYSCTL_BASELINE")
sysctl_changed+=$(write_pending "$sysctl_pending" /etc/sysctl.d/61-adplatform-k3s-cis.conf 0644 "$SYSCTL_CIS")
if [ -n "$SYSCTL_POOL" ]; then
  sysctl_changed+=$(write_pending "$sysctl_pending" /etc/sysctl.d/62-adplatform-pool.conf 0644 "$SYSCTL_POOL")
elif [ -n "$(remove_file /etc/sysctl.d/62-adplatform-pool.conf)" ]; then
  touch "$sysctl_pending"
  sysctl_changed+=changed
fi
if [ -n "$sysctl_changed" ]; then
  sysctl --system >/dev/null
  rm -f "$sysctl_pending"
  log "sysctl drop-ins applied"
fi

# --- THP, governor, clocksource: a oneshot unit, so they hold across reboots and are in place
# before K3s starts. Paths are checked because many cloud VMs have no cpufreq. ----------------
runtime_script=$(cat <<SCRIPT
#!/bin/sh
# Managed by adplatform (Pulumi). Applied at boot by adplatform-tuning.service.
set -eu
for knob in enabled defrag; do
  echo "$THP_MODE" >"/sys/kernel/mm/transparent_hugepage/\$knob"
done
if [ -n "$CPU_GOVERNOR" ] && [ -e /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor ]; then
  for gov in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do
    echo "$CPU_GOVERNOR" >"\$gov" || true
  done
fi
source=/sys/devices/system/clocksource/clocksource0
if [ -n "$CLOCKSOURCE" ] && grep -qw "$CLOCKSOURCE" "\$source/available_clocksource" 2>/dev/null; then
  echo "$CLOCKSOURCE" >"\$source/current_clocksource"
fi
SCRIPT
)
unit=$(cat <<'UNIT'
[Unit]
Description=adplatform host tuning (THP policy, CPU governor, clocksource)
ConditionPathExists=/sys/kernel/mm/transparent_hugepage/enabled
Before=k3s.service k3s-agent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/adplatform-tuning

[Install]
WantedBy=multi-user.target
UNIT
)
# As the sysctl files: the restart stays pending until it happened.
unit_pending=/var/lib/adplatform/tuning-unit-pending
unit_changed=""
unit_changed+=$(write_pending "$unit_pending" /usr/local/sbin/adplatform-tuning 0755 "$runtime_script")
unit_changed+=$(write_pending "$unit_pending" /etc/systemd/system/adplatform-tuning.service 0644 "$unit")
if [ -n "$unit_changed" ]; then
  systemctl daemon-reload
  systemctl enable adplatform-tuning.service >/dev/null 2>&1
  systemctl restart adplatform-tuning.service
  rm -f "$unit_pending"
  log "runtime tuning unit installed and applied"
elif ! systemctl is-active --quiet adplatform-tuning.service; then
  systemctl start adplatform-tuning.service
fi

# Ubuntu's ondemand.service resets the governor at boot; it must not fight the unit above.
if [ -n "$CPU_GOVERNOR" ] && systemctl is-enabled --quiet ondemand.service 2>/dev/null; then
  systemctl disable --now ondemand.service >/dev/null 2>&1
  log "ondemand.service disabled"
fi

# --- swap off (Kubernetes and every database here want no swap) --------------------------------
if [ -n "$(swapon --show --noheadings)" ]; then
  swapoff -a
  log "swap turned off"
fi
if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then
  sed -i -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \1  # disabled by adplatform/' /etc/fstab
  log "swap entries commented out in /etc/fstab"
fi

# --- periodic TRIM for SSD-backed database filesystems ------------------------------------------
if [ "$FSTRIM" = "true" ] && ! systemctl is-enabled --quiet fstrim.timer 2>/dev/null; then
  systemctl enable --now fstrim.timer >/dev/null 2>&1
  log "fstrim.timer enabled"
fi

# --- AppArmor profile of CI build containers ----------------------------------------------------
# The GitLab runner's build containers name it (a Localhost profile: containerd's default plus mounts inside
# the job's own namespaces, for Buildah). apparmor.service loads /etc/apparmor.d at every boot, before K3s;
# this loads it now, and again whenever it changed. A pod naming a profile its node lacks cannot start.
apparmor_file="/etc/apparmor.d/$APPARMOR_PROFILE_NAME"
if grep -qx Y /sys/module/apparmor/parameters/enabled 2>/dev/null && command -v apparmor_parser >/dev/null 2>&1; then
  apparmor_changed=$(write_file "$apparmor_file" 0644 "$APPARMOR_PROFILE")
  if [ -n "$apparmor_changed" ] ||
    ! grep -qxF "$APPARMOR_PROFILE_NAME (enforce)" /sys/kernel/security/apparmor/profiles; then
    apparmor_parser --replace --write-cache "$apparmor_file"
    log "AppArmor profile $APPARMOR_PROFILE_NAME loaded"
  fi
else
  log "AppArmor is off on this node: CI image builds (profile $APPARMOR_PROFILE_NAME) cannot run here"
fi

# --- seccomp profile of io_uring services -------------------------------------------------------
# Services with adServices.services.<name>.ioUring name it as a Localhost profile (containerd's denials plus
# io_uring: components/host/seccomp/README.md). The runtime reads the file when a container starts, so writing
# it is all there is to do; a pod naming a profile its node lacks cannot start.
if [ -n "$(write_file "$SECCOMP_PROFILE_PATH" 0644 "$SECCOMP_PROFILE")" ]; then
  log "seccomp profile $SECCOMP_PROFILE_PATH installed"
fi

# --- SSH: keys only ------------------------------------------------------------------------------
# The drop-in is checked with `sshd -t` before sshd reloads, so a bad file never locks the deployer out (the
# running session survives a reload either way). With socket activation (Ubuntu 24.04) there may be no
# running daemon to reload: each new connection reads the files anew.
sshd=$(command -v sshd || echo /usr/sbin/sshd)
if [ -x "$sshd" ]; then
  # sshd -t and -T stop at a missing privilege separation directory ("Missing privilege separation directory:
  # /run/sshd"), which only ssh.service creates (RuntimeDirectory=sshd): socket-activated sshd on Ubuntu 24.04 has
  # not run before the first connection, so on a node configured from cloud-init it never has. Created as the unit would.
  install -d -m 0755 -o root -g root /run/sshd
  if ! grep -Eqi '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/' /etc/ssh/sshd_config; then
    log "warning: /etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d: $SSHD_DROP_IN has no effect"
  fi
  # The marker keeps the reload pending until it happened: a run that stops in between reloads on its retry.
  sshd_pending=/var/lib/adplatform/sshd-reload-pending
  if [ -n "$(write_pending "$sshd_pending" "$SSHD_DROP_IN" 0644 "$SSHD_CONFIG")" ]; then
    if ! "$sshd" -t; then
      rm -f "$SSHD_DROP_IN"
      log "sshd refused $SSHD_DROP_IN; removed it, SSH left as it was"
      exit 1
    fi
    for unit in ssh sshd; do
      if systemctl is-active --quiet "$unit.service"; then
        systemctl reload "$unit.service"
      fi
    done
    rm -f "$sshd_pending"
    log "sshd: password login off, root by key only"
  fi
  if ! "$sshd" -T 2>/dev/null | grep -qx 'passwordauthentication no'; then
    log "sshd still accepts passwords: a file read before $SSHD_DROP_IN turns them on"
    exit 1
  fi
fi

# --- unattended upgrades: security only, no reboot ------------------------------------------------
if ! dpkg-query -W -f='${Status}' unattended-upgrades 2>/dev/null | grep -q 'install ok installed'; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q unattended-upgrades >/dev/null
  log "unattended-upgrades installed"
fi
apt_changed=""
apt_changed+=$(write_file "$APT_UNATTENDED_DROP_IN" 0644 "$APT_UNATTENDED")
apt_changed+=$(write_file "$APT_PERIODIC_DROP_IN" 0644 "$APT_PERIODIC")
if [ -n "$apt_changed" ]; then
  log "unattended-upgrades: security origins only, automatic reboot off"
fi

log "host tuning for pool $POOL_NAME is in place"
