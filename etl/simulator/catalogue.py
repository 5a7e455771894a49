"""The names, namespaces and descriptions the simulated dataset draws from.

Facts (plus one splice helper): the real official images in rough popularity order, a few well-known
non-``library`` namespaces, and description templates that exercise what a loader must survive
(non-ASCII text, emoji, quotes, commas, newlines).
"""

from __future__ import annotations

# Official images, most pulled first (the order drives the long-tailed pull counts).
OFFICIAL = """
nginx busybox alpine ubuntu redis python postgres node mysql golang httpd mongo debian memcached
traefik rabbitmq mariadb openjdk centos registry docker hello-world php wordpress elasticsearch
amazonlinux tomcat consul vault influxdb telegraf kibana logstash eclipse-temurin maven gradle
ruby rust bash nextcloud sonarqube haproxy caddy eclipse-mosquitto zookeeper cassandra couchdb
neo4j solr jenkins ghost drupal joomla adminer phpmyadmin composer fluentd kong nats
amazoncorretto buildpack-deps gcc perl fedora oraclelinux rockylinux almalinux archlinux photon
clearlinux erlang elixir haskell julia r-base swift dart groovy clojure pypy jruby mono
ibmjava ibm-semeru-runtimes sapmachine open-liberty websphere-liberty jetty tomee flink storm
clickhouse couchbase crate arangodb orientdb rethinkdb aerospike percona chronograf kapacitor
mongo-express redmine mediawiki matomo odoo plone xwiki yourls monica friendica backdrop
bonita convertigo geonetwork silverpeas lightstreamer liquibase krakend api-firewall emqx
varnish unit hitch spiped notary satosa znc irssi eggdrop teamspeak rocket.chat postfixadmin
ros gazebo neurodebian mageia alt cirros clefos swipl rakudo-star haxe hylang jobber
php-zendserver kaazing-gateway nats-streaming sentry owncloud piwik rapidoid iojs java django
rails celery glassfish jenkins-slave mono-runtime opensuse sourcemage crux euleros sl thrift
nuxeo known ubuntu-debootstrap fsharp swarm express-gateway
""".split()

# A few well-known images under other namespaces, spliced into the catalogue so the default
# dataset exercises the namespace filter (two ``nginx`` and two ``redis`` in different namespaces).
NAMESPACED = [
    ("bitnami", "nginx"), ("bitnami", "redis"), ("grafana", "grafana"), ("prom", "prometheus"),
    ("gitlab", "gitlab-ce"), ("portainer", "portainer-ce"), ("minio", "minio"),
    ("rancher", "rancher"), ("envoyproxy", "envoy"), ("kubernetesui", "dashboard"),
    ("jaegertracing", "all-in-one"), ("huaweicloud", "swr-demo"),
]

# Synthesised images beyond the catalogue: namespace pool and name parts.
SYNTH_NAMESPACES = ["library", "library", "library", "cloudnative", "devtools", "dataops",
                    "edge", "mlops", "observability", "security"]
SYNTH_PARTS_A = ["swift", "amber", "cobalt", "quiet", "rapid", "lunar", "polar", "crimson",
                 "silver", "nimble", "vivid", "brisk", "solar", "frost", "ember", "gentle"]
SYNTH_PARTS_B = ["falcon", "harbor", "relay", "forge", "beacon", "vector", "ledger", "prism",
                 "anchor", "signal", "quarry", "lattice", "cascade", "summit", "orbit", "kernel"]

# Description templates; {n} is the image name, {N} the capitalised name.
DESCRIPTIONS = [
    "Official build of {N}.",
    "{N} is a popular open-source project, packaged as an official image.",
    "官方镜像：{n}，由社区维护，支持 x86_64 与 ARM64 架构。",
    "{N} — image officielle, déploiement rapide et sécurisé (« prête à l'emploi »).",
    "🐳 {n}: \"batteries included\", small, and fast 🚀",
    "{N} server.\nMulti-arch build, with tags for every release, LTS, and edge.",
    "The {N} image, with \"quotes\", 'apostrophes', commas, and a backslash \\ in it.",
    "Ein schlankes {N}-Image für Produktion und Entwicklung; größe ≈ 5 MB.",
    "{N} 镜像 — 轻量级，\"开箱即用\"，适合 CI/CD 流水线 ✅",
    "",
    "{N}, {n}, and friends: tools, libraries, and runtimes (tab\there).",
    "Imagen oficial de {N}: rápida, pequeña y segura. ¿Preguntas? Ver la documentación.",
]


def spliced() -> list[tuple[str, str]]:
    """Official images with a namespaced one spliced in every 13 rows (small datasets get some)."""
    out: list[tuple[str, str]] = []
    extra = iter(NAMESPACED)
    for k, name in enumerate(OFFICIAL):
        out.append((name, "library"))
        if k % 13 == 12:
            ns_name = next(extra, None)
            if ns_name:
                out.append((ns_name[1], ns_name[0]))
    return out
