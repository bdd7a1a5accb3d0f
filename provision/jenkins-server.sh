#!/usr/bin/env bash
# Jenkins LTS on the controller: from the official apt repository (signed), or
# from a war file labctl copied in (--jenkins-war, for labs without internet).
# The setup wizard is skipped; an init script creates the admin user (password
# from a 0600 file labctl put there) and registers every agent as a permanent
# inbound node, writing each node's secret for labctl to hand to the agent.
# Runs only when labctl asks for it (run: "never"): after the SSH keys are in.
# Environment: JENKINS_SOURCE (apt|war), JENKINS_URL, JENKINS_AGENTS ("agent1 ...").
set -euo pipefail
# shellcheck source=provision/lib.sh
. /var/tmp/labctl/lib.sh
: "${JENKINS_SOURCE:?}" "${JENKINS_URL:?}"
JENKINS_AGENTS=${JENKINS_AGENTS:-}

REPO=https://pkg.jenkins.io/debian-stable
KEY=/usr/share/keyrings/jenkins-keyring.asc
WAR=/usr/share/java/jenkins.war
HOME_DIR=/var/lib/jenkins
STATE=$HOME_DIR/.labctl
JAVA_OPTS="-Djava.awt.headless=true -Djenkins.install.runSetupWizard=false"

install_from_apt() {
  if [ ! -s "$KEY" ]; then
    if ! err=$(curl -fsSL --connect-timeout 10 --max-time 60 -o "$KEY.part" "$REPO/jenkins.io-2023.key" 2>&1); then
      rm -f "$KEY.part"
      fail "cannot download Jenkins from $REPO (${err##*curl: }): pass --jenkins-war FILE to install it from a war file"
    fi
    mv "$KEY.part" "$KEY"
    changed "Jenkins signing key"
  fi
  put_file /etc/apt/sources.list.d/jenkins.list 644 <<<"deb [signed-by=$KEY] $REPO binary/"
  ensure_role_packages jenkins-server
  # from Jenkins' own repository: no box carries it
  ensure_packages jenkins
  UNIT=/etc/systemd/system/jenkins.service.d/labctl.conf
  put_file "$UNIT" 644 <<DROPIN
[Service]
Environment="JAVA_OPTS=$JAVA_OPTS"
Environment="JENKINS_PORT=8080"
DROPIN
}

install_from_war() {
  local upload=/var/tmp/labctl/jenkins.war
  if [ -f "$upload" ]; then
    if ! cmp -s "$upload" "$WAR"; then
      install -D -m 644 "$upload" "$WAR"
      changed "jenkins.war from the lab's --jenkins-war"
    fi
    rm -f "$upload"
  fi
  [ -f "$WAR" ] || fail "no jenkins.war on the controller: pass --jenkins-war FILE"
  ensure_role_packages jenkins-server
  UNIT=/etc/systemd/system/jenkins.service
  put_file "$UNIT" 644 <<UNIT
[Unit]
Description=Jenkins (from jenkins.war, labctl)
After=network.target

[Service]
User=jenkins
Environment=JENKINS_HOME=$HOME_DIR
ExecStart=/usr/bin/java $JAVA_OPTS -jar $WAR --httpPort=8080
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
}

# jenkins-user.sh, which runs first, made the user and $STATE.
case "$JENKINS_SOURCE" in
  apt) install_from_apt ;;
  war) install_from_war ;;
  *) fail "unknown JENKINS_SOURCE $JENKINS_SOURCE" ;;
esac
[ -s "$STATE/admin-password" ] || fail "the admin password file is missing: run labctl up jenkins"

put_file "$STATE/url" 644 <<<"$JENKINS_URL"
agents=$(for agent in $JENKINS_AGENTS; do echo "$agent"; done)
put_file "$STATE/agents" 644 <<<"$agents"
ensure_dir "$HOME_DIR/init.groovy.d" 755 jenkins
put_file "$HOME_DIR/init.groovy.d/labctl.groovy" 644 <<'GROOVY'
// Written by labctl; runs at every start of Jenkins, changes only what differs.
import hudson.model.Node
import hudson.model.User
import hudson.security.FullControlOnceLoggedInAuthorizationStrategy
import hudson.security.HudsonPrivateSecurityRealm
import hudson.slaves.DumbSlave
import hudson.slaves.JNLPLauncher
import hudson.slaves.RetentionStrategy
import jenkins.install.InstallState
import jenkins.model.Jenkins
import jenkins.model.JenkinsLocationConfiguration

def jenkins = Jenkins.get()
def state = new File(jenkins.rootDir, ".labctl")
def password = new File(state, "admin-password").text.trim()

def realm = jenkins.securityRealm
if (!(realm instanceof HudsonPrivateSecurityRealm)) {
    realm = new HudsonPrivateSecurityRealm(false)
    jenkins.securityRealm = realm
}
def admin = User.getById("admin", false)
if (admin == null) {
    realm.createAccount("admin", password)
} else {
    admin.addProperty(HudsonPrivateSecurityRealm.Details.fromPlainPassword(password))
}
def authorization = new FullControlOnceLoggedInAuthorizationStrategy()
authorization.allowAnonymousRead = false
jenkins.authorizationStrategy = authorization
jenkins.installState = InstallState.INITIAL_SETUP_COMPLETED
JenkinsLocationConfiguration.get().url = new File(state, "url").text.trim()

def secrets = new File(state, "agent-secrets")
secrets.mkdirs()
new File(state, "agents").readLines().collect { it.trim() }.findAll { it }.each { name ->
    if (jenkins.getNode(name) == null) {
        def agent = new DumbSlave(name, "/var/lib/jenkins-agent", new JNLPLauncher())
        agent.numExecutors = 2
        agent.labelString = "lab linux"
        agent.mode = Node.Mode.NORMAL
        agent.retentionStrategy = new RetentionStrategy.Always()
        jenkins.addNode(agent)
    }
    new File(secrets, name).text = jenkins.getComputer(name).jnlpMac
}
jenkins.save()
GROOVY
chown -R jenkins:jenkins "$HOME_DIR/init.groovy.d" "$STATE"
# Jenkins reads all of these only when it starts.
run_current jenkins "$UNIT" "$WAR" "$STATE/url" "$STATE/agents" "$HOME_DIR/init.groovy.d/labctl.groovy"

for _ in $(seq 1 150); do
  code=$(curl -s -o /dev/null -w '%{http_code}' http://localhost:8080/login || true)
  [ "$code" = 200 ] && break
  sleep 2
done
[ "$code" = 200 ] || fail "Jenkins did not answer on port 8080 within 300 s: see journalctl -u jenkins on the controller"
for agent in $JENKINS_AGENTS; do
  [ -s "$STATE/agent-secrets/$agent" ] || fail "Jenkins did not register agent $agent: see $HOME_DIR/init.groovy.d/labctl.groovy"
done
say "Jenkins answers at $JENKINS_URL"
