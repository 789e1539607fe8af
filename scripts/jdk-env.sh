# Sourced by ./kindling and scripts/test: exports JAVA_HOME pointing at a JDK >= 22.
# Takes $JAVA_HOME if it is new enough, else the newest JDK under /usr/lib/jvm.
_kindling_jdk_major() {
    "$1/bin/java" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p'
}
_kindling_pick_jdk() {
    local cand best="" best_major=0 major
    for cand in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/*; do
        [ -x "$cand/bin/java" ] && [ -x "$cand/bin/javac" ] || continue
        major=$(_kindling_jdk_major "$cand")
        [ -n "$major" ] || continue
        if [ "$cand" = "${JAVA_HOME:-}" ] && [ "$major" -ge 22 ]; then best=$cand; break; fi
        if [ "$major" -ge 22 ] && [ "$major" -gt "$best_major" ]; then best=$cand; best_major=$major; fi
    done
    [ -n "$best" ] || return 1
    printf '%s\n' "$best"
}
if ! KINDLING_JAVA_HOME=$(_kindling_pick_jdk); then
    echo "kindling: no JDK 22 or newer found (looked at JAVA_HOME and /usr/lib/jvm/*)." >&2
    echo "kindling: install one (for example Temurin 25) or point JAVA_HOME at it." >&2
    exit 3
fi
export JAVA_HOME=$KINDLING_JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"
