# Sourced by ./kindling and scripts/test: exports JAVA_HOME pointing at a JDK >= 22 (and sets
# KINDLING_JDK_MAJOR to its feature version). Takes $JAVA_HOME if it is new enough, else the newest JDK
# under /usr/lib/jvm. Versions come from each JDK's `release` file, read with shell builtins: choosing
# starts no JVM and no other process (a JDK without that file is asked once by running it).
_kindling_jdk_major() {    # sets _kindling_major to the feature version of the JDK at $1, or fails
    local line v=""
    if [ -r "$1/release" ]; then
        while IFS= read -r line || [ -n "$line" ]; do
            case $line in
                JAVA_VERSION=*) v=${line#JAVA_VERSION=}; v=${v//\"/}; break ;;
            esac
        done <"$1/release"
    else
        v=$("$1/bin/java" -XshowSettings:properties -version 2>&1 |
            sed -n 's/^ *java\.specification\.version = //p')
    fi
    _kindling_major=${v%%[!0-9]*}
    [ -n "$_kindling_major" ]
}
_kindling_pick_jdk() {
    local cand best="" best_major=0 major _kindling_major
    for cand in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/*; do
        [ -x "$cand/bin/java" ] && [ -x "$cand/bin/javac" ] || continue
        _kindling_jdk_major "$cand" || continue
        major=$_kindling_major
        if [ "$cand" = "${JAVA_HOME:-}" ] && [ "$major" -ge 22 ]; then best=$cand; best_major=$major; break; fi
        if [ "$major" -ge 22 ] && [ "$major" -gt "$best_major" ]; then best=$cand; best_major=$major; fi
    done
    [ -n "$best" ] || return 1
    KINDLING_JAVA_HOME=$best
    KINDLING_JDK_MAJOR=$best_major
}
if ! _kindling_pick_jdk; then
    echo "kindling: no JDK 22 or newer found (looked at JAVA_HOME and /usr/lib/jvm/*)." >&2
    echo "kindling: install one (for example Temurin 25) or point JAVA_HOME at it." >&2
    exit 3
fi
export JAVA_HOME=$KINDLING_JAVA_HOME
export PATH="$JAVA_HOME/bin:$PATH"
unset KINDLING_JAVA_HOME
# Maven's own libraries call sun.misc.Unsafe, which JDK 24 and later warn about; the option that
# allows it quietly exists from JDK 23 on, and older JVMs refuse to start with it.
if [ "$KINDLING_JDK_MAJOR" -ge 23 ]; then
    case " ${MAVEN_OPTS:-} " in
        *" --sun-misc-unsafe-memory-access="*) ;;
        *) export MAVEN_OPTS="${MAVEN_OPTS:+$MAVEN_OPTS }--sun-misc-unsafe-memory-access=allow" ;;
    esac
fi
