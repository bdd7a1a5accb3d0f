#!/usr/bin/env bash
# A permanent inbound agent: a `jenkins` user with a work directory and a
# systemd unit that connects to the controller over WebSocket, with agent.jar
# fetched from the controller itself (no plugin, no internet on agents).
# The unit waits for its secret, which labctl delivers once the controller
# has registered this agent. Environment: JENKINS_URL, AGENT_NAME.
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh
: "${JENKINS_URL:?}" "${AGENT_NAME:?}"

ensure_user jenkins /var/lib/jenkins
ensure_dir /var/lib/jenkins/.ssh 700 jenkins
ensure_dir /var/lib/jenkins-agent 755 jenkins
ensure_dir /etc/jenkins-agent 750 jenkins

put_file /etc/systemd/system/jenkins-agent.service 644 <<UNIT
[Unit]
Description=Jenkins inbound agent ${AGENT_NAME} (labctl)
Wants=network-online.target
After=network-online.target
ConditionPathExists=/etc/jenkins-agent/secret

[Service]
User=jenkins
WorkingDirectory=/var/lib/jenkins-agent
ExecStartPre=/usr/bin/curl -fsS --retry 5 --retry-delay 2 -o /var/lib/jenkins-agent/agent.jar ${JENKINS_URL}jnlpJars/agent.jar
ExecStart=/usr/bin/java -jar /var/lib/jenkins-agent/agent.jar -url ${JENKINS_URL} -webSocket -name ${AGENT_NAME} -secret @/etc/jenkins-agent/secret -workDir /var/lib/jenkins-agent
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT
ensure_enabled jenkins-agent.service  # it starts once labctl delivers its secret
