#!/usr/bin/env bash
# Build the video3dcnn images for linux/amd64 and push them to Amazon ECR (or any registry) for SageMaker jobs.
#
# Usage: ./build_and_push.sh [processing|training|all] [options]
#
#   --region R               AWS region (default: AWS_REGION, else AWS_DEFAULT_REGION, else `aws configure get region`)
#   --tag T                  image tag (default: the git short sha, with -dirty for uncommitted changes)
#   --no-latest              do not also tag and push :latest
#   --repository-prefix P    repositories P-processing and P-training (default: sagemaker-video3dcnn; the
#                            AmazonSageMakerFullAccess policy only allows pushing to repositories named *sagemaker*)
#   --registry HOST[:PORT]   push to this registry instead of ECR: no AWS call, no login (log in yourself)
#   --processing-image IMG   push this local image instead of building the processing image (same for --training-image)
#   --training-image IMG
#   --offline                air-gapped build (docker/build-images.sh --offline): base image
#                            local/bookworm-python:3.11 and wheelhouse/ only, as prepared by
#                            docker/build-base-image.sh and docker/fill-wheelhouse.sh
#   --dry-run                print every command without running it
#   -h, --help               this text
#
# The final image URIs go to stdout, one per line (processing first); everything else goes to stderr:
#   ./build_and_push.sh all --region eu-west-1 > image-uris.txt
# AWS_ENDPOINT_URL and AWS_PROFILE work as for any AWS CLI call. The ECR login token is piped from
# `aws ecr get-login-password` into `docker login --password-stdin` and never printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PLATFORM=linux/amd64
KINDS=(processing training)

TARGET=all
REGION=
TAG=
LATEST=1
PREFIX=sagemaker-video3dcnn
REGISTRY=
OFFLINE=0
DRY_RUN=0
declare -A SOURCE_IMAGE=()

die() { echo "build_and_push: $*" >&2; exit 1; }
log() { echo "build_and_push: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

# Print a command (shell-quoted) on stderr.
show() { printf '+%s\n' "$(printf ' %q' "$@")" >&2; }

# Print a command, then run it with its stdout sent to stderr (stdout is reserved for the image URIs).
run() {
    show "$@"
    [ "$DRY_RUN" = 1 ] || "$@" >&2
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            processing | training | all) TARGET=$1 ;;
            --region) REGION=${2:?--region needs a value}; shift ;;
            --tag) TAG=${2:?--tag needs a value}; shift ;;
            --no-latest) LATEST=0 ;;
            --repository-prefix) PREFIX=${2:?--repository-prefix needs a value}; shift ;;
            --registry) REGISTRY=${2:?--registry needs a value}; shift ;;
            --processing-image) SOURCE_IMAGE[processing]=${2:?--processing-image needs a value}; shift ;;
            --training-image) SOURCE_IMAGE[training]=${2:?--training-image needs a value}; shift ;;
            --offline) OFFLINE=1 ;;
            --dry-run) DRY_RUN=1 ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument '$1' (see --help)" ;;
        esac
        shift
    done
    [ "$TARGET" = all ] || KINDS=("$TARGET")
}

validate_names() {
    [[ $TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid tag '$TAG': letters, digits, _ . - (max 128)"
    [[ $PREFIX =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] ||
        die "invalid repository prefix '$PREFIX': lower-case letters, digits and . _ - / between them"
    [[ $PREFIX == *sagemaker* ]] ||
        log "warning: '$PREFIX' does not contain 'sagemaker': AmazonSageMakerFullAccess cannot push to it"
}

# The git short sha of HEAD, with -dirty when tracked files have uncommitted changes.
git_tag() {
    local sha
    sha=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || die "not a git checkout: pass --tag"
    git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || sha+=-dirty
    echo "$sha"
}

# Region precedence: --region, AWS_REGION, AWS_DEFAULT_REGION, then the AWS config file (`aws configure get`
# reads only the file, which is why the variables are checked first).
resolve_region() {
    [ -n "$REGION" ] || REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
    [ -n "$REGION" ] || REGION=$(aws configure get region 2>/dev/null || true)
    [ -n "$REGION" ] || die "no AWS region: pass --region or set AWS_REGION"
}

# ECR registry host name; China regions live in the aws-cn partition under amazonaws.com.cn.
ecr_registry() {
    local account=$1 domain=amazonaws.com
    case $REGION in cn-*) domain=amazonaws.com.cn ;; esac
    echo "$account.dkr.ecr.$REGION.$domain"
}

caller_account() {
    local command=(aws sts get-caller-identity --region "$REGION" --query Account --output text)
    show "${command[@]}"
    if [ "$DRY_RUN" = 1 ]; then echo "ACCOUNT_ID"; return; fi
    "${command[@]}" || die "cannot get the AWS account (aws sts get-caller-identity failed): check your credentials"
}

ensure_repository() {
    local repository=$1 error
    local describe=(aws ecr describe-repositories --region "$REGION" --repository-names "$repository")
    show "${describe[@]}"
    if [ "$DRY_RUN" = 0 ]; then
        if error=$("${describe[@]}" 2>&1 >/dev/null); then
            log "repository $repository exists"
            return
        fi
        [[ $error == *RepositoryNotFoundException* ]] || die "cannot look up repository $repository: $error"
    fi
    run aws ecr create-repository --region "$REGION" --repository-name "$repository" \
        --image-scanning-configuration scanOnPush=true --output text --query repository.repositoryUri
}

ecr_login() {
    local registry=$1
    printf '+ aws ecr get-login-password --region %q | docker login --username AWS --password-stdin %q\n' \
        "$REGION" "$registry" >&2
    if [ "$DRY_RUN" = 1 ]; then return; fi
    aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$registry" >&2
}

# Build one image through the images' own build script (labels, offline mode), for linux/amd64.
build_image() {
    local kind=$1 image=$2 args=(--only "$1")
    if [ "$OFFLINE" = 1 ]; then args+=(--offline); fi
    run env "${kind^^}_IMAGE=$image" PLATFORM="$PLATFORM" bash "$ROOT/docker/build-images.sh" "${args[@]}"
}

# Tag the local image and push it; print nothing on stdout.
push_image() {
    local source=$1 repository=$2 tags=("$TAG") tag
    if [ "$LATEST" = 1 ]; then tags+=(latest); fi
    for tag in "${tags[@]}"; do
        run docker tag "$source" "$repository:$tag"
        run docker push "$repository:$tag"
    done
}

main() {
    parse_args "$@"
    [ -n "$TAG" ] || TAG=$(git_tag)
    validate_names
    if [ -z "$REGISTRY" ]; then
        resolve_region
        local account
        account=$(caller_account)
        REGISTRY=$(ecr_registry "$account")
        for kind in "${KINDS[@]}"; do ensure_repository "$PREFIX-$kind"; done
        ecr_login "$REGISTRY"
    fi
    local uris=()
    for kind in "${KINDS[@]}"; do
        local source=${SOURCE_IMAGE[$kind]:-video3dcnn-$kind:$TAG}
        [ -n "${SOURCE_IMAGE[$kind]:-}" ] || build_image "$kind" "$source"
        push_image "$source" "$REGISTRY/$PREFIX-$kind"
        uris+=("$REGISTRY/$PREFIX-$kind:$TAG")
    done
    if [ "$DRY_RUN" = 1 ]; then log "dry run: nothing was built, tagged or pushed"; fi
    printf '%s\n' "${uris[@]}"
}

main "$@"
